"""The simulator's events part: turns the world's changes into Feishu's events and delivers them.

Composed by ``SimulatorApp`` beside the API: it subscribes to the world's change hook (see
``world/changes.py``), asks ``translate`` which events a change makes for the subscriptions in
``coverage``, keeps them in the ``outbox`` and pushes them by request URL (``webhook``) or, while a
client holds one, by long connection (``long_connection``), on Feishu's retry schedule.

A store-app part drives it through ``push_app_ticket`` and ``push_tenant`` (``app_ticket``,
``app_open``, ``app_status_change``, ``app_uninstalled``); ``push_payload`` sends any event as given.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from ..world import Change, World
from . import envelopes
from .coverage import Coverage
from .long_connection import LongConnections
from .outbox import Delivery, Outbox
from .settings import EventSettings
from .translate import task_events
from .webhook import Webhook

TENANT_EVENTS = {
    "installed": ("app_open", {}),
    "active": ("app_status_change", {"status": "start_by_tenant"}),
    "stopped": ("app_status_change", {"status": "stop_by_tenant"}),
    "uninstalled": ("app_uninstalled", {}),
}


def new_event_id() -> str:
    """Shaped like Feishu's: 32 hex characters."""
    return secrets.token_hex(16)


class EventHub:
    """Events from changes, their deliveries, and the app ticket, for one app and tenant."""

    def __init__(self, world: World, app_id: str, settings: EventSettings | None = None) -> None:
        self.world = world
        self.app_id = app_id
        self.settings = settings if settings is not None else EventSettings()
        self.coverage = Coverage(world)
        self.outbox = Outbox(self.settings)
        self.webhook = Webhook()
        self.long_connections = LongConnections()
        self.ticket: str | None = None  # the newest app_ticket pushed (an app token endpoint checks it)
        self.tickets: set[str] = set()  # every app_ticket pushed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] = world.subscribe(self.on_change)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ events in
    def on_change(self, change: Change) -> None:
        """The world's change hook (any thread): queue the events the change makes.

        Only once the app has a delivery (a request URL, or a long connection opened once): an app
        without one gets no events, and the simulator keeps nothing for it.
        """
        self.coverage.note(change)
        if self.webhook.url is None and self.long_connections.opened == 0:
            return
        task_id = change.task_id or ""
        events = task_events(
            change,
            v2_covered=bool(task_id) and self.coverage.v2_covers(task_id),
            app_created=bool(task_id) and self.coverage.created_by_app(task_id),
            tenant_events=self.settings.tenant_events,
        )
        for event in events:
            self._queue_v2(event.event_type, event.event, change.at_ms)

    def _origin(self, tenant_key: str | None = None) -> envelopes.Origin:
        settings = self.settings
        return envelopes.Origin(self.app_id, tenant_key or settings.tenant_key, settings.verification_token)

    def _queue_v2(
        self, event_type: str, event: dict[str, Any], at_ms: int, tenant_key: str | None = None
    ) -> str:
        event_id = new_event_id()
        self.push_payload(
            envelopes.v2_envelope(self._origin(tenant_key), event_id, event_type, at_ms, event), event_id
        )
        return event_id

    def push_payload(self, payload: dict[str, Any], event_id: str | None = None) -> str:
        """Deliver ``payload`` as it is (any envelope, any type); returns the id it is tracked by."""
        event_id = event_id or str(
            payload.get("uuid") or (payload.get("header") or {}).get("event_id") or new_event_id()
        )
        header = payload.get("header")
        event_type = (
            header.get("event_type") if isinstance(header, dict) else (payload.get("event") or {}).get("type")
        )
        self.outbox.add(event_id, str(event_type), payload, time.monotonic())
        self._notify()
        return event_id

    def push_app_ticket(self) -> str:
        """An ``app_ticket`` event (schema 1.0, as Feishu sends it); returns the ticket."""
        ticket = "ticket-" + secrets.token_hex(12)
        self.ticket = ticket
        self.tickets.add(ticket)
        now_ms = int(time.time() * 1000)
        origin = envelopes.Origin(self.app_id, "", self.settings.verification_token)
        payload = envelopes.v1_envelope(origin, new_event_id(), "app_ticket", now_ms, {"app_ticket": ticket})
        del payload["event"]["tenant_key"]
        self.push_payload(payload)
        return ticket

    def push_tenant(self, tenant_key: str, status: str) -> str:
        """A tenant installed (``installed``), started (``active``), stopped or uninstalled the app."""
        event_type, fields = TENANT_EVENTS[status]
        now_ms = int(time.time() * 1000)
        event = {"app_id": self.app_id, "tenant_key": tenant_key, **fields}
        return self._queue_v2(event_type, event, now_ms, tenant_key)

    # ------------------------------------------------------------------ lifecycle (the server's loop)
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await self.webhook.start(self.settings.max_in_flight)
        self._tasks = [asyncio.create_task(self._deliver_loop()), asyncio.create_task(self._ticket_loop())]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._sending]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._sending, return_exceptions=True)
        await self.long_connections.close_all()
        await self.webhook.stop()
        self._loop = None

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to wake
                loop.call_soon_threadsafe(wake.set)

    def wake(self) -> None:
        """Look at the outbox now (a channel appeared, a test moved the due times)."""
        self._notify()

    # ------------------------------------------------------------------ delivering
    def _has_channel(self) -> bool:
        return self.long_connections.connected() > 0 or self.webhook.url is not None

    async def _deliver_loop(self) -> None:
        assert self._wake is not None
        while True:
            room = self.settings.max_in_flight - len(self._sending)
            if self._has_channel() and room > 0:
                for delivery in self.outbox.take_due(time.monotonic(), room):
                    task = asyncio.create_task(self._push(delivery))
                    self._sending.add(task)
                    task.add_done_callback(self._sent)
            next_due = self.outbox.next_due()
            wait = (
                None if next_due is None or not self._has_channel() else max(0.0, next_due - time.monotonic())
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait if wait is None else max(wait, 0.001))

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if self._wake is not None:
            self._wake.set()

    async def _push(self, delivery: Delivery) -> None:
        if self.long_connections.connected():
            answer = await self.long_connections.push(delivery.event_id, delivery.payload, self.settings)
        elif self.webhook.url is not None:
            answer = await self.webhook.push(delivery.payload, self.settings)
        else:
            self.outbox.put_back(delivery)
            return
        self.outbox.answered(delivery, answer, time.monotonic())

    async def _ticket_loop(self) -> None:
        while True:
            interval = self.settings.app_ticket_interval_seconds
            await asyncio.sleep(interval if interval > 0 else 1.0)
            if self.settings.app_ticket_interval_seconds > 0:
                self.push_app_ticket()

    async def resend_ticket_later(self) -> None:
        await asyncio.sleep(self.settings.app_ticket_resend_delay_seconds)
        self.push_app_ticket()

    # ------------------------------------------------------------------ for tests (any thread)
    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop from another thread and return its result."""
        if self._loop is None:
            raise RuntimeError("the simulator is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def set_request_url(self, url: str | None, verify: bool = True) -> dict[str, Any]:
        """Set (after a url_verification, as the console does) or clear the request URL."""
        return self.run(self.request_url(url, verify))

    async def request_url(self, url: str | None, verify: bool = True) -> dict[str, Any]:
        if url is None:
            self.webhook.url = None
            return {"url": None}
        outcome = await self.webhook.verify(url, self.settings) if verify else {"url": url, "verified": None}
        if outcome["verified"] is not False:
            self.webhook.url = url
            self.wake()
        return outcome

    def drop_connections(self) -> int:
        return int(self.run(self.long_connections.drop_all()))

    def retry_now(self) -> int:
        count = self.outbox.retry_now()
        self.wake()
        return count

    def acknowledged_ids(self) -> set[str]:
        return {d.event_id for d in self.outbox.deliveries() if d.state == "acknowledged"}
