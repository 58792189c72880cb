"""Fault settings: every way the simulated API can misbehave, all off by default.

A ``Faults`` object is read afresh on every request, so a test may change any
field while the server runs and the next request sees it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Faults:
    """Knobs for latency, quotas, random failures, token and pagination quirks."""

    #: Delay (asyncio.sleep) before answering each business request.
    latency_ms: float = 0.0
    #: Apply ``latency_ms`` to the token endpoint too.
    latency_on_token: bool = False

    #: Business requests allowed per sliding 1-second window (None = unlimited).
    quota_per_second: int | None = None
    #: Business requests allowed per sliding 60-second window (None = unlimited).
    quota_per_minute: int | None = None
    #: Endpoint -> (per_second, per_minute) replacing the two defaults above for that endpoint
    #: (None in the pair: no limit for that window).  Every endpoint has its own windows either
    #: way.  Names: followers, list_tasks, get_task, v2_tasklists, v2_tasklist_tasks, v2_get_task;
    #: ``quota.DOCUMENTED_LIMITS`` holds the documented figures.
    quota_per_endpoint: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    #: HTTP status of rate-limit answers (body code is always 99991400); some APIs use 400.
    rate_limit_http_status: int = 429
    #: Share of business requests answered with a rate-limit error regardless of quota.
    rate_limit_fraction: float = 0.0
    #: ``x-ogw-ratelimit-reset`` sent with those random rate-limit answers.
    storm_reset_seconds: int = 1

    #: Share of business requests answered HTTP 500 / code 1470605.
    error_500_fraction: float = 0.0
    #: Share of business requests answered HTTP 502 with an HTML (non-JSON) body.
    html_502_fraction: float = 0.0
    #: task id -> how many more follower-list requests for it fail with 500; counts down.
    fail_first_n_requests_for: dict[str, int] = field(default_factory=dict)
    #: Task ids whose follower-list requests always fail with 500.
    always_fail_tasks: set[str] = field(default_factory=set)

    #: Lifetime of newly issued tenant tokens; expired tokens get code 99991663.
    token_ttl_seconds: int = 7200
    #: HTTP status for token errors (99991661/63/68/71/77); upstream shows 400, 200 reported.
    token_error_http_status: int = 400
    #: Prefix of issued tenant tokens; anything but "t-" makes them the wrong type (403/1470403).
    tenant_token_prefix: str = "t-"

    #: Tasks whose follower pages all carry the same page_token with has_more true.
    repeat_page_token_tasks: set[str] = field(default_factory=set)
    #: The last follower page carries a non-empty page_token (has_more stays false).
    page_token_on_last_page: bool = False
    #: The last follower page says has_more true but its page_token is "".
    omit_has_more_with_empty_token: bool = False

    #: Task v2: timestamps (created_at, due.timestamp, archive_msec, ...) as JSON numbers, not strings.
    v2_numeric_timestamps: bool = False
    #: Task v2: counts (subtask_count) as JSON strings, not numbers.
    v2_string_counts: bool = False
    #: Task v2: the last page carries ``page_token: ""`` (the v2 overview's rule) instead of none
    #: (each endpoint page's rule).
    v2_empty_page_token_on_last_page: bool = False

    #: Seed of the generator behind every random fault (deterministic per request order).
    seed: int = 0

    def quota_for(self, endpoint: str) -> tuple[int | None, int | None]:
        """(per_second, per_minute) for one endpoint: its override, else the defaults."""
        override = (self.quota_per_endpoint or {}).get(endpoint)
        if override is None:
            return self.quota_per_second, self.quota_per_minute
        per_second, per_minute = override
        return per_second, per_minute

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (sets become sorted lists) for the control endpoint."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, set):
                out[key] = sorted(value)
        return out

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update from JSON, converting lists back to sets where needed."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        for key, value in changes.items():
            if isinstance(getattr(self, key), set) and value is not None:
                value = set(value)
            setattr(self, key, value)
