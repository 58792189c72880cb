"""Fetch many tasks concurrently and hand the results to dlt's (synchronous) extraction.

The asyncio loop runs in its own thread so that requests stay in flight while dlt writes the
previous batch; a bounded queue between the two keeps memory flat however many tasks a run
has. dlt's own async/parallel resources evaluate items one by one through a thread pool,
which is what this module exists to beat (see BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import math
import queue
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from .auth import TenantToken, TokenSource, UserToken
from .client import FeishuClient, FetchStats
from .discovery import iter_task_pages
from .errors import BudgetExhausted, FatalError
from .followers import TaskOutcome, fetch_task_followers, invalid_outcome
from .ratelimit import PacingLimiter
from .retry import RetryPolicy
from .task_ids import normalize_task_id, unique_in_order


@dataclass
class ClientSettings:
    """Everything needed to talk to one Feishu tenant."""

    base_url: str
    app_id: str | None = None
    app_secret: str | None = None
    user_access_token: str | None = None
    concurrency: int = 32
    max_rps: float | None = 50.0
    max_rpm: float | None = 1000.0
    timeout_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __repr__(self) -> str:  # never show credentials, even in a debugger or traceback
        return f"ClientSettings(base_url={self.base_url!r}, app_id={self.app_id!r}, ...)"


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


# httpcore asks for ``sniffio`` on every request (to tell asyncio from trio). Where sniffio is
# not installed, each ask is a failed import that searches sys.path anew: measured at ~15% of
# the client's CPU. A None entry makes that import fail at once, as it would have anyway.
if "sniffio" not in sys.modules:
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]

POOL_SIZE = 4  # connections per httpx pool; see ShardedHttp


class ShardedHttp:
    """GETs through several small httpx connection pools, each request to the least busy one.

    Why not one ``httpx.AsyncClient``: its pool does O(connections) work per request, and the
    client layer (URL merging, cookies, auth and redirect hooks) costs more than the wire.
    Measured against the simulator on 2 cores (bench/): one AsyncClient with 16-32 connections
    ~550-750 req/s; 4-8 AsyncClients of 4 connections ~1,200-1,400 req/s; the same pools as bare
    ``httpx.AsyncHTTPTransport`` with prebuilt requests ~2,100-2,400 req/s. We need none of the
    client-layer features on this path (no redirects, cookies or auth flows), so it is the last.
    """

    def __init__(self, base_url: str, concurrency: int, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(timeout_seconds).as_dict()
        count = max(1, math.ceil(concurrency / POOL_SIZE))
        limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
        tls = httpx.create_ssl_context()  # loading the CA bundle costs ~30 ms: once, not per pool
        self._pools = [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(count)]
        self._busy = [0] * count

    async def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """The answer with its body read; raises httpx.TransportError like a client would."""
        url = f"{self.base_url}{path}?{urlencode(params)}" if params else f"{self.base_url}{path}"
        request = httpx.Request("GET", url, headers=headers, extensions={"timeout": self._timeout})
        shard = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[shard] += 1
        try:
            response = await self._pools[shard].handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        finally:
            self._busy[shard] -= 1
        response.request = request
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


@asynccontextmanager
async def open_client(
    settings: ClientSettings, stats: FetchStats, max_requests: int | None = None
) -> AsyncIterator[FeishuClient]:
    """Sharded pools for the business GETs, one plain client for the (rare) token requests."""
    sharded = ShardedHttp(settings.base_url, settings.concurrency, settings.timeout_seconds)
    try:
        async with httpx.AsyncClient(base_url=settings.base_url, timeout=settings.timeout_seconds) as http:
            tokens: TokenSource
            if settings.app_id and settings.app_secret:
                tokens = TenantToken(http, settings.app_id, settings.app_secret, settings.retry)
            elif settings.user_access_token:
                tokens = UserToken(settings.user_access_token)
            else:
                raise FatalError(
                    "no credentials: set SOURCES__FEISHU_TASKS__APP_ID and SOURCES__FEISHU_TASKS__APP_SECRET "
                    "(or SOURCES__FEISHU_TASKS__USER_ACCESS_TOKEN), or put them in .dlt/secrets.toml"
                )
            limiter = PacingLimiter(settings.max_rps, settings.max_rpm)
            yield FeishuClient(sharded, tokens, limiter, settings.retry, stats, max_requests)
    finally:
        await sharded.aclose()


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
