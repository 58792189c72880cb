"""Fetch many tasks concurrently and hand the results to dlt's (synchronous) extraction.

The asyncio loop runs in its own thread so that requests stay in flight while dlt writes the
previous batch; a bounded queue between the two keeps memory flat however many tasks a run
has. dlt's own async/parallel resources evaluate items one by one through a thread pool,
which is what this module exists to beat (see BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from .client import ClientSettings, open_client
from .discovery import iter_task_pages
from .errors import BudgetExhausted, FatalError
from .followers import TaskOutcome, fetch_task_followers, invalid_outcome
from .stats import FetchStats
from .task_ids import normalize_task_id, unique_in_order


@dataclass
class FetchPlan:
    """Which tasks to fetch and how.

    Order of work: ``task_ids`` as given, then tasks found by ``discover``, then the
    ``sweep_task_ids`` (oldest first); with ``max_requests`` the tail of that order waits for
    a later run. ``dry_run`` lists the tasks instead of fetching their followers.
    """

    task_ids: Iterable[str]
    user_id_type: str = "open_id"
    discover: bool = False
    discover_since: int | None = None
    sweep_task_ids: Iterable[str] = ()
    max_requests: int | None = None
    expected_pages: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    batch_rows: int = 20_000


@dataclass
class DiscoveredTasks:
    """A page of task objects from ``--discover``."""

    tasks: list[dict[str, Any]]


@dataclass
class DiscoveryDone:
    """End of the task listing: the newest ``update_time`` seen, and whether it ran to the end."""

    max_update_time: int | None
    complete: bool


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def fetch_outcomes(
    plan: FetchPlan, settings: ClientSettings, stats: FetchStats
) -> Iterator[list[TaskOutcome] | DiscoveredTasks | DiscoveryDone]:
    """Batches of outcomes (and discovered task pages) as the background loop produces them."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def run_loop() -> None:
        try:
            asyncio.run(_produce(plan, settings, stats, handoff, stop))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            handoff.put(_Failed(_first_cause(exc)))
        else:
            handoff.put(_DONE)

    thread = threading.Thread(target=run_loop, name="feishu-fetch", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with suppress(queue.Empty):
                handoff.get(timeout=0.05)
        thread.join()


class _Admission:
    """Starts a task only if its expected pages still fit under ``max_requests``.

    Tasks are admitted in order (oldest stale task first): once one does not fit, no later
    one starts, so the next run begins with it and a big task is never starved by small ones.
    The client's hard cap still stops any task that needs more pages than expected.
    """

    def __init__(self, max_requests: int | None, expected_pages: dict[str, int]) -> None:
        self.max_requests = max_requests
        self.expected_pages = expected_pages
        self.listing_requests = 0
        self.reserved = 0
        self.closed = False

    def admit(self, task_id: str) -> bool:
        if self.max_requests is None:
            return True
        cost = self.expected_pages.get(task_id, 1)
        first = self.reserved == 0  # a task bigger than the whole cap still gets its turn
        if self.closed or (not first and self.listing_requests + self.reserved + cost > self.max_requests):
            self.closed = True
            return False
        self.reserved += cost
        return True


def _int_or_zero(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _first_cause(exc: BaseException) -> BaseException:
    """The FatalError inside a TaskGroup's ExceptionGroup, else the first leaf exception."""
    while isinstance(exc, BaseExceptionGroup):
        fatal = [e for e in exc.exceptions if isinstance(e, FatalError)]
        exc = fatal[0] if fatal else exc.exceptions[0]
    return exc


async def _produce(
    plan: FetchPlan,
    settings: ClientSettings,
    stats: FetchStats,
    handoff: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    batch: list[TaskOutcome] = []
    batch_rows = 0
    pending_ids: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(maxsize=settings.concurrency * 4)

    async def emit(item: Any) -> None:
        await asyncio.to_thread(handoff.put, item)

    async def add(outcome: TaskOutcome) -> None:
        nonlocal batch, batch_rows
        batch.append(outcome)
        batch_rows += len(outcome.followers) + 1
        if batch_rows >= plan.batch_rows:
            full, batch, batch_rows = batch, [], 0
            await emit(full)

    async with open_client(settings, stats, plan.max_requests) as client:
        seen: set[str] = set()
        budget = _Admission(plan.max_requests, plan.expected_pages)

        async def enqueue(task_id: str, reason: str) -> None:
            if task_id not in seen:
                seen.add(task_id)
                await pending_ids.put((task_id, reason))

        async def discover() -> None:
            newest: int | None = None
            try:
                async for tasks in iter_task_pages(client, plan.user_id_type, plan.discover_since):
                    if stop.is_set():
                        await emit(DiscoveryDone(newest, complete=False))
                        return
                    budget.listing_requests += 1
                    if not plan.dry_run:
                        await emit(DiscoveredTasks(tasks))
                    for task in tasks:
                        newest = max(newest or 0, _int_or_zero(task.get("update_time")))
                        if task_id := normalize_task_id(str(task.get("id", ""))):
                            await enqueue(task_id, "discovered")
            except BudgetExhausted:
                await emit(DiscoveryDone(newest, complete=False))
                return
            await emit(DiscoveryDone(newest, complete=True))

        async def feed() -> None:
            for raw in unique_in_order(plan.task_ids):
                task_id = normalize_task_id(raw)
                if task_id is None:
                    await add(invalid_outcome(raw[:200], "not a task id: a UUID was expected"))
                else:
                    await enqueue(task_id, "given")
            if plan.discover:
                await discover()
            for task_id in plan.sweep_task_ids:
                await enqueue(task_id, "stale")
            for _ in range(settings.concurrency):
                await pending_ids.put(None)

        async def work() -> None:
            while (item := await pending_ids.get()) is not None:
                task_id, reason = item
                if stop.is_set():  # only drain the queue so feed() can finish
                    continue
                if plan.dry_run:
                    stats.planned.append((task_id, reason))
                    continue
                if not budget.admit(task_id):
                    stats.skipped_by_budget += 1
                    continue
                try:
                    outcome = await fetch_task_followers(client, task_id, plan.user_id_type)
                except BudgetExhausted:  # left for a later run: no outcome, no status row
                    stats.skipped_by_budget += 1
                    continue
                await add(outcome)

        async with asyncio.TaskGroup() as group:
            group.create_task(feed())
            for _ in range(settings.concurrency):
                group.create_task(work())
    if batch:
        await emit(batch)
