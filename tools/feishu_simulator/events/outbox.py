"""The events waiting to be delivered, and what became of each: Feishu's at-least-once bookkeeping.

An event is pushed until one push is answered 200 in time, on Feishu's retry schedule
(``EventSettings.retry_delay``), then given up. Duplicates (a second push of an acknowledged
event) and reordering (a random wait before the first push) are the settings'. Thread-safe: the
world's change hook adds from the mutating thread, the delivery loop takes from its own.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from .settings import EventSettings

PENDING, ACKNOWLEDGED, GIVEN_UP = "pending", "acknowledged", "given_up"


@dataclass
class Delivery:
    """One event and its pushes so far."""

    event_id: str
    event_type: str
    payload: dict[str, Any]
    due: float
    state: str = PENDING
    in_flight: bool = False
    attempts: int = 0
    answers: list[str] = field(default_factory=list)  # per push: "200", "500", "timeout", ...
    replays: int = 0  # pushes after it was acknowledged (duplicates)


class Outbox:
    """Deliveries by event id, the pending ones in a heap by due time."""

    def __init__(self, settings: EventSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._all: dict[str, Delivery] = {}
        self._due: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._rng = random.Random(settings.seed)

    def add(self, event_id: str, event_type: str, payload: dict[str, Any], now: float) -> None:
        settings = self.settings
        with self._lock:
            wait = settings.delay_ms + self._rng.uniform(0, settings.reorder_window_ms)
            delivery = Delivery(event_id, event_type, payload, now + wait / 1000)
            self._all[event_id] = delivery
            heapq.heappush(self._due, (delivery.due, next(self._order), event_id))

    def take_due(self, now: float, limit: int) -> list[Delivery]:
        """Up to ``limit`` deliveries due now, marked as being sent."""
        taken: list[Delivery] = []
        with self._lock:
            while self._due and self._due[0][0] <= now and len(taken) < limit:
                due, _, event_id = heapq.heappop(self._due)
                delivery = self._all[event_id]
                if delivery.in_flight or delivery.state == GIVEN_UP or due != delivery.due:
                    continue  # an entry left behind by a reschedule
                delivery.in_flight = True
                taken.append(delivery)
        return taken

    def next_due(self) -> float | None:
        with self._lock:
            return self._due[0][0] if self._due else None

    def put_back(self, delivery: Delivery) -> None:
        """Not sent (no channel to send it on): due again as it was, no attempt counted."""
        with self._lock:
            delivery.in_flight = False
            heapq.heappush(self._due, (delivery.due, next(self._order), delivery.event_id))

    def answered(self, delivery: Delivery, answer: str, now: float) -> None:
        """Record one push's answer; schedule the retry, a duplicate, or nothing."""
        with self._lock:
            delivery.in_flight = False
            delivery.attempts += 1
            delivery.answers.append(answer)
            if delivery.state == ACKNOWLEDGED:  # a duplicate push: its answer changes nothing
                return
            if answer == "200":
                delivery.state = ACKNOWLEDGED
                if self._rng.random() < self.settings.duplicate_fraction:
                    delivery.replays += 1
                    delivery.due = now + self._rng.uniform(0, max(self.settings.reorder_window_ms, 10)) / 1000
                    heapq.heappush(self._due, (delivery.due, next(self._order), delivery.event_id))
                return
            wait = self.settings.retry_delay(delivery.attempts)
            if wait is None:
                delivery.state = GIVEN_UP
                return
            delivery.state = PENDING
            delivery.due = now + wait
            heapq.heappush(self._due, (delivery.due, next(self._order), delivery.event_id))

    def retry_now(self) -> int:
        """Make every pending push due now (a test's way to skip Feishu's long waits)."""
        with self._lock:
            waiting = {event_id for _, _, event_id in self._due}
            self._due = []
            for event_id in waiting:
                delivery = self._all[event_id]
                if delivery.state != GIVEN_UP and not delivery.in_flight:
                    delivery.due = 0.0
                    heapq.heappush(self._due, (0.0, next(self._order), event_id))
            return len(self._due)

    def snapshot(self, with_deliveries: bool = False) -> dict[str, Any]:
        with self._lock:
            deliveries = list(self._all.values())
            counts = {state: 0 for state in (PENDING, ACKNOWLEDGED, GIVEN_UP)}
            for d in deliveries:
                counts[d.state] += 1
            counts["in_flight"] = sum(d.in_flight for d in deliveries)
            # pushes still to come: retries of pending events and duplicates of acknowledged ones
            counts["queued"] = sum(
                1
                for due, _, event_id in self._due
                if due == self._all[event_id].due and self._all[event_id].state != GIVEN_UP
            )
            shown: dict[str, Any] = {
                "events": len(deliveries),
                **counts,
                "pushes": sum(d.attempts for d in deliveries),
                "duplicates": sum(d.replays for d in deliveries),
            }
            if with_deliveries:
                shown["deliveries"] = [
                    {
                        "event_id": d.event_id,
                        "event_type": d.event_type,
                        "state": d.state,
                        "attempts": d.attempts,
                        "answers": list(d.answers),
                        "replays": d.replays,
                    }
                    for d in deliveries
                ]
            return shown

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._all.values())
