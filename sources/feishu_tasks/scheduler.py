"""Which task is fetched when: the async side of one run's fetch.

Order of work: the given ids, then the tasks of the task lists (``listings``), then the
tasks a listing finds (``discover``), then the stale sweep, each id once. The listings run
beside the fetch, ahead of it, so the run's total (``FetchStats.tasks_queued``) is known early,
not only when the fetch nears its end. Every id the run takes goes into ``ledger.TakenTasks``
(on disk: the dedupe set and the queue in one, so 1,000,000 ids cost no memory), and the
feeder reads them back in order. ``concurrency`` workers take ids from a bounded queue; a task
starts only while its expected requests fit under ``max_requests`` (``Admission``); finished
outcomes are grouped into batches of about ``batch_rows`` rows (``Batcher``) and emitted to the
thread bridge. When the runner asks to stop, no new task starts and the requests in flight are
cancelled; what finished is still emitted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from .client import ClientSettings, FeishuClient, open_client
from .control import RunControl
from .endpoints import FOLLOWERS, GET_TASK
from .errors import BudgetExhausted, FatalError, RateLimitedTooLong, TaskError
from .followers import fetch_task_followers, fetch_task_followers_v2
from .items import DiscoveredTasks, DiscoveryDone, Emit, OutcomeBatch, TaskOutcome, invalid_outcome
from .journal import FOLLOWER_EVENT_TYPES, TaskChange
from .ledger import TakenTasks
from .listings import KnownTasklists, ListReading, iter_task_pages
from .settings import (
    CODE_INVALID_TASK,
    DEFAULT_FOLLOWERS_API,
    DEFAULT_USER_ID_TYPE,
    STATUS_DELETED,
    STATUS_INVALID,
)
from .stats import FetchStats
from .task_ids import normalize_task_id, task_key

STOP_POLL_SECONDS = 0.1
FEED_CHUNK = 1_000  # ids the feeder reads from the ledger at a time
INVALID_ID = "not a task id: a UUID was expected"
CHANGED = "changed"  # why a task is read: the change journal marks it

Connect = Callable[[ClientSettings, FetchStats, "int | None"], AbstractAsyncContextManager[FeishuClient]]


@dataclass
class FetchPlan:
    """What one run fetches: the source's parameters, and what the destination knows that matters."""

    task_ids: Iterable[str]
    user_id_type: str = DEFAULT_USER_ID_TYPE
    tasklist_guids: list[str] = field(default_factory=list)
    all_tasklists: bool = False
    tasklist_completed: bool | None = None
    discover: bool = False
    discover_since: int | None = None  # Unix seconds: list tasks created from then on
    followers_api: str = DEFAULT_FOLLOWERS_API  # v1, v2 or auto (settings.FOLLOWERS_APIS)
    max_requests: int | None = None
    batch_rows: int = 20_000
    # Known tasks due again (the stale sweep), oldest first; fetched after the others.
    sweep_task_ids: Collection[str] = ()
    # Requests each known task took last time (when more than one), so max_requests admits whole tasks.
    expected_pages: Mapping[str, int] = field(default_factory=dict)
    # The task lists read before, and their tasks then (``--all-tasklists``): see listings.py.
    known_tasklists: KnownTasklists | None = None
    # Tasks the change journal marks (task id → the latest change), read first, each through its API.
    changed: Mapping[str, TaskChange] = field(default_factory=dict)

    @property
    def reads_tasklists(self) -> bool:
        return bool(self.tasklist_guids) or self.all_tasklists


class Admission:
    """Starts a task only if its expected requests still fit under ``max_requests``.

    Tasks are admitted in order (the stale sweep oldest first): once one does not fit, no
    later one starts, so the next run begins with it and a big task is never starved by small
    ones. The client's hard cap still stops any task that needs more pages than expected.
    """

    def __init__(self, max_requests: int | None) -> None:
        self.max_requests = max_requests
        self.listing_requests = 0
        self.reserved = 0
        self.closed = False

    def admit(self, cost: int) -> bool:
        if self.max_requests is None:
            return True
        first = self.reserved == 0  # a task bigger than the whole cap still gets its turn
        if self.closed or (not first and self.listing_requests + self.reserved + cost > self.max_requests):
            self.closed = True
            return False
        self.reserved += cost
        return True


class Batcher:
    """Groups outcomes into batches of about ``batch_rows`` rows before they cross threads."""

    def __init__(self, emit: Emit, batch_rows: int) -> None:
        self._emit = emit
        self._batch_rows = batch_rows
        self._outcomes: list[TaskOutcome] = []
        self._rows = 0

    async def add(self, outcome: TaskOutcome) -> None:
        self._outcomes.append(outcome)
        self._rows += len(outcome.followers) + 1
        if self._rows >= self._batch_rows:
            await self.flush()

    async def flush(self) -> None:
        if self._outcomes:
            batch = OutcomeBatch(self._outcomes, self._rows)
            self._outcomes, self._rows = [], 0
            await self._emit(batch)


def _first_cause(exc: BaseException) -> BaseException:
    """The FatalError inside a TaskGroup's exception group, else its first leaf exception."""
    while isinstance(exc, BaseExceptionGroup):
        fatal = [e for e in exc.exceptions if isinstance(e, FatalError)]
        exc = fatal[0] if fatal else exc.exceptions[0]
    return exc


def _int_or_zero(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


class FetchScheduler:
    """Runs one fetch on the current event loop; ``run`` is the bridge's producer."""

    def __init__(
        self,
        plan: FetchPlan,
        settings: ClientSettings,
        control: RunControl,
        connect: Connect = open_client,
    ) -> None:
        self.plan = plan
        self._connect = connect  # the HTTP client's factory (a unit test gives a scripted one)
        self.settings = settings
        self.inputs, self.report = control.inputs, control.report
        self.stats = control.report.stats
        self.expected_pages: Mapping[str, int] = plan.expected_pages
        self._queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(maxsize=settings.concurrency * 4)
        self._admission = Admission(plan.max_requests)
        self._listing_over = False

    async def run(self, emit: Emit, closed: threading.Event) -> None:
        """Fetch every task of the plan, emitting batches of outcomes (and listing pages)."""
        self._emit = emit
        self._batcher = Batcher(emit, self.plan.batch_rows)
        self.stats.started_at = time.monotonic()
        self._more = asyncio.Event()  # set when a listing takes a task: the feeder has more to read
        self._taken = self._accept_given()  # before the listing starts: a given id is never "discovered"
        try:
            async with self._connect(self.settings, self.stats, self.plan.max_requests) as client:
                self._client = client
                # the display's ETA follows the endpoint that reads the followers
                followers_endpoint = GET_TASK if self.plan.followers_api == "v2" else FOLLOWERS
                self.stats.pacing = client.pacing.limiter(followers_endpoint).rules
                try:
                    async with asyncio.TaskGroup() as group:
                        tasks = [group.create_task(self._list()), group.create_task(self._feed())]
                        tasks += [group.create_task(self._work()) for _ in range(self.settings.concurrency)]
                        group.create_task(self._cancel_when_stopped(tasks, closed))
                except BaseExceptionGroup as errors:  # one worker's fatal error ends the run: say which
                    raise _first_cause(errors) from None
        finally:
            self.stats.finished_at = time.monotonic()
            self._taken.close()
        await self._batcher.flush()

    # ------------------------------------------------------------------ feeding ids
    def _accept_given(self) -> TakenTasks:
        """The changed and the given ids, counted into the run's total at once; a malformed one is
        recorded as such (the journal's ids were checked when they were recorded)."""
        taken = TakenTasks(chain(((task_id, CHANGED) for task_id in self.plan.changed), self._given_kinds()))
        self.stats.tasks_queued += taken.count()
        multi_page = sum(pages - 1 for task_id, pages in self.expected_pages.items() if task_id in taken)
        self.stats.expected_requests += taken.count("given") + taken.count(CHANGED) + multi_page
        return taken

    def _given_kinds(self) -> Iterator[tuple[str, str]]:
        """Each given id as stored (``task_key``: two spellings of one id are one task), and its kind."""
        for raw in self.plan.task_ids:
            if key := task_key(raw):
                yield key, "given" if normalize_task_id(raw) else TakenTasks.INVALID

    def _accept(self, task_id: str, kind: str) -> bool:
        """Count a task into the run's total, once; False if it is in the run already."""
        if not self._taken.take(task_id, kind):
            return False
        self.stats.tasks_queued += 1
        self.stats.expected_requests += self.expected_pages.get(task_id, 1)
        self._more.set()
        return True

    async def _list(self) -> None:
        """The task lists, the listing, then the stale sweep, into the ledger: ahead of the fetch."""
        try:
            if self.plan.reads_tasklists:
                await self._read_tasklists()
            if self.plan.discover:
                await self._discover()
            for task_id in self.plan.sweep_task_ids:
                self._accept(task_id, "stale")
            self.stats.listing_done = True
        finally:
            self._listing_over = True
            self._more.set()

    async def _feed(self) -> None:
        """Hand the workers the run's tasks in the order taken: given, then listed, then stale."""
        seq = 0
        while True:
            taken = self._taken.after(seq, FEED_CHUNK)
            if not taken:
                if self._listing_over:
                    break
                self._more.clear()
                await self._more.wait()
                continue
            seq = taken[-1][0]
            for _, task_id, kind in taken:
                if kind == TakenTasks.INVALID:
                    await self._finish(invalid_outcome(task_id, INVALID_ID), expected=0)
                else:
                    await self._queue.put((task_id, kind))
        for _ in range(self.settings.concurrency):
            await self._queue.put(None)

    async def _read_tasklists(self) -> None:
        plan = self.plan

        async def enqueue(task_id: str, reason: str) -> None:
            self._accept(task_id, reason)

        reading = ListReading(
            self._client,
            plan.user_id_type,
            self._emit,
            enqueue,
            self._count_listing_request,
            self.inputs.dry_run,
            plan.known_tasklists,
        )
        reading.by_status = self.stats.tasklists_by_status
        try:
            await reading.run(plan.tasklist_guids, plan.all_tasklists, plan.tasklist_completed)
        except BudgetExhausted as exc:
            self._note_rate_limit_stop(exc)
            return  # the cap is reached: the lists not read wait for a later run
        if (why := reading.nothing_readable()) and not (self._has_tasks() or self.plan.discover):
            raise FatalError(why)

    def _has_tasks(self) -> bool:
        """Tasks to fetch besides the listing at hand: given, from the lists so far, or stale."""
        return bool(self._taken.after(0, 1)) or bool(self.plan.sweep_task_ids)

    def _note_rate_limit_stop(self, exc: BudgetExhausted) -> None:
        if isinstance(exc, RateLimitedTooLong):
            self.stats.rate_limit_stop = str(exc)

    def _count_listing_request(self) -> None:
        self._admission.listing_requests += 1
        self.stats.listing_pages += 1

    async def _discover(self) -> None:
        """List the tasks the token can see; the cursor advances only after a complete listing."""
        newest: int | None = None
        pages = iter_task_pages(self._client, self.plan.user_id_type, self.plan.discover_since)
        try:
            async for tasks in pages:
                self._admission.listing_requests += 1
                self.stats.listing_pages += 1
                if not self.inputs.dry_run:
                    await self._emit(DiscoveredTasks(tasks))
                for task in tasks:
                    newest = max(newest or 0, _int_or_zero(task.get("update_time")))
                    task_id = normalize_task_id(str(task.get("id", "")))
                    if task_id:
                        self._accept(task_id, "discovered")
        except BudgetExhausted as exc:
            self._note_rate_limit_stop(exc)
            await self._emit(DiscoveryDone(newest, complete=False))
            return
        except TaskError as exc:  # the tasks found so far are fetched; the cursor stays where it was
            problem = f"listing tasks (--discover) stopped: {exc}"
            if newest is None and not self._has_tasks():
                raise FatalError(problem) from None  # nothing at all to fetch
            self.stats.listing_problems.append(problem)
            await self._emit(DiscoveryDone(newest, complete=False))
            return
        await self._emit(DiscoveryDone(newest, complete=True))

    # ------------------------------------------------------------------ fetching
    async def _work(self) -> None:
        while (item := await self._queue.get()) is not None:
            if self.inputs.stop.is_set():  # asked to stop: no new task starts (the canceller follows)
                self.stats.interrupted += 1
                continue
            await self._fetch(*item)

    async def _fetch(self, task_id: str, reason: str) -> None:
        expected = self.expected_pages.get(task_id, 1)
        if self.inputs.dry_run:
            self.report.planned.append((task_id, reason))
            return
        if not self._admission.admit(expected):
            self.stats.skipped_by_budget += 1
            return
        try:
            outcome = await self._read_followers(task_id, reason)
        except RateLimitedTooLong as exc:  # likewise, and the runner stops with its line
            self.stats.skipped_by_rate_limit += 1
            self.stats.rate_limit_stop = str(exc)
            return
        except BudgetExhausted:  # left for a later run: no outcome, no status row
            self.stats.skipped_by_budget += 1
            return
        except asyncio.CancelledError:  # the run is stopping: this task waits for the next run
            self.stats.interrupted += 1
            raise
        await self._finish(outcome, expected)

    async def _read_followers(self, task_id: str, reason: str) -> TaskOutcome:
        """Through the API the plan names; ``auto`` tries v2 once for a list's task v1 calls invalid."""
        api, user_id_type = self.plan.followers_api, self.plan.user_id_type
        if reason == CHANGED:
            return await self._read_changed(self.plan.changed[task_id])
        if api == "v2":
            return await fetch_task_followers_v2(self._client, task_id, user_id_type)
        outcome = await fetch_task_followers(self._client, task_id, user_id_type)
        if api == "auto" and reason == "tasklist" and outcome.error_code == CODE_INVALID_TASK:
            return await fetch_task_followers_v2(self._client, task_id, user_id_type)
        return outcome

    async def _read_changed(self, change: TaskChange) -> TaskOutcome:
        """A task an event marked, through the API its id belongs to, dated by the event.

        An event that says the task was deleted is believed once the API no longer knows it.
        """
        fetch = fetch_task_followers_v2 if change.api == "v2" else fetch_task_followers
        outcome = await fetch(self._client, change.task_id, self.plan.user_id_type)
        if change.deleted and outcome.status == STATUS_INVALID:
            outcome.status = STATUS_DELETED
        if change.event_time_ms is not None and FOLLOWER_EVENT_TYPES.intersection(change.event_types):
            outcome.event_time = datetime.fromtimestamp(change.event_time_ms / 1000, UTC)
        return outcome

    async def _finish(self, outcome: TaskOutcome, expected: int) -> None:
        self.stats.count_outcome(outcome.status, len(outcome.followers))
        self.stats.expected_requests_done += expected
        self.stats.task_requests_done += outcome.pages or (1 if expected else 0)  # a refusal took one
        await self._batcher.add(outcome)

    async def _cancel_when_stopped(self, tasks: list[asyncio.Task[None]], closed: threading.Event) -> None:
        """Cancel the feeder and the workers once the runner (or the consumer) says stop."""
        while not all(task.done() for task in tasks):
            if self.inputs.stop.is_set() or closed.is_set():
                for task in tasks:
                    task.cancel()
                return
            await asyncio.sleep(STOP_POLL_SECONDS)
