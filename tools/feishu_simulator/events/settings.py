"""How the simulator delivers events: the app's event settings (as in the developer console) and
the ways delivery misbehaves. Read afresh for every delivery, so a test may change them live
(``POST /_sim/events/settings`` merges a JSON object of these fields).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Feishu pushes an event again when it was not answered 200 within 3 s: after about 15 s, 5 min,
# 1 h and 6 h (docs/feishu-api.md, "Events").
FEISHU_RETRY_SCHEDULE = (15.0, 300.0, 3600.0, 21600.0)
ACK_TIMEOUT_SECONDS = 3.0


@dataclass
class EventSettings:
    """The console's Encrypt Key and Verification Token, the tenant, and the delivery's faults."""

    verification_token: str = "sim_verification_token"
    encrypt_key: str | None = None
    tenant_key: str = "2ed263bf32cf1651"
    #: The app has the tenant-wide v1 scope: ``task.task.update_tenant_v1`` for every task.
    tenant_events: bool = True
    #: Share of acknowledged events sent once more (Feishu's at-least-once delivery).
    duplicate_fraction: float = 0.0
    #: Each delivery waits a random 0..this before its first attempt: events overtake each other.
    reorder_window_ms: float = 0.0
    #: Every first attempt waits this long after the change.
    delay_ms: float = 0.0
    #: Multiplies Feishu's retry schedule (0.001: 15 ms, 300 ms, 3.6 s, 21.6 s).
    time_scale: float = 1.0
    ack_timeout_seconds: float = ACK_TIMEOUT_SECONDS
    max_in_flight: int = 64
    #: An ``app_ticket`` every this many seconds (0: only on resend); Feishu: about every hour.
    app_ticket_interval_seconds: float = 0.0
    #: Seconds from ``app_ticket/resend`` to the pushed ticket (Feishu: "a minute or two").
    app_ticket_resend_delay_seconds: float = 0.5
    #: DATA frames one event is split into on the long connection (``sum`` / ``seq``).
    long_connection_parts: int = 1
    #: The ``ClientConfig`` handed to long-connection clients.
    reconnect_interval_seconds: int = 120
    reconnect_nonce_seconds: int = 30
    ping_interval_seconds: int = 120
    seed: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Merge a JSON object of field changes; ValueError names an unknown field."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown event settings: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)

    def to_dict(self, show_secrets: bool = False) -> dict[str, Any]:
        shown = dataclasses.asdict(self)
        if not show_secrets:  # the simulator's own fake secrets, but a report shows only that they are set
            shown["verification_token"] = bool(self.verification_token)
            shown["encrypt_key"] = bool(self.encrypt_key)
        return shown

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds until the next push after ``attempts`` failed ones; None when Feishu gives up."""
        if attempts > len(FEISHU_RETRY_SCHEDULE):
            return None
        return FEISHU_RETRY_SCHEDULE[attempts - 1] * self.time_scale
