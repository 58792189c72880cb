"""Feishu's events, sending side: what the simulator pushes for each change of its world.

``hub.EventHub`` is the part ``SimulatorApp`` composes; the modules below it, one job each:
``settings`` (the console's keys and the delivery's faults), ``coverage`` (subscriptions: which
tasks' events the app gets), ``translate`` (a change → events), ``envelopes`` (their JSON),
``sealing`` (encrypt and sign), ``outbox`` (retries, duplicates, reordering), ``webhook`` and
``long_connection`` (the two deliveries), ``frames`` (the long connection's protobuf frames).
The HTTP routes are ``api/events.py``.
"""

from .hub import EventHub
from .settings import EventSettings

__all__ = ["EventHub", "EventSettings"]
