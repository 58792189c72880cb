"""The Feishu client: paced, authenticated GETs, and Feishu's page-token pagination over them.

What an answer means is decided elsewhere, by pure functions: ``responses.classify`` (the
envelope) and a ``pages`` parser (the page's shape). Here we only act on it: return the page,
wait and try again, renew the token once, or raise. ``paginate`` follows page tokens, always
within bounds (as dlt's ``RESTClient.paginate`` does for generic REST APIs; ours adds Feishu's
checks: a repeated token, a server that never says "no more").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

from .auth import TenantToken, TokenSource, UserToken
from .endpoints import FOLLOWERS, Endpoint
from .errors import BudgetExhausted, CredentialsError, FatalError, ProtocolError, TaskError
from .pages import ListPage, PageError, PageParser
from .ratelimit import Pacing, PacingLimiter
from .responses import (
    Fatal,
    Malformed,
    Ok,
    RateLimited,
    TaskFailed,
    TokenRejected,
    Transient,
    Verdict,
    classify,
)
from .retry import Attempts, RetryPolicy
from .settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_LISTING_PAGES,
    DEFAULT_MAX_LISTING_SECONDS,
    DEFAULT_MAX_PAGES_PER_TASK,
    DEFAULT_MAX_RATE_LIMITED_SECONDS,
    DEFAULT_MAX_RPM,
    DEFAULT_MAX_RPS,
    DEFAULT_MAX_SECONDS_PER_TASK,
    DEFAULT_TIMEOUT_SECONDS,
    TOKEN_REFRESHABLE_CODES,
)
from .slots import SharedSlots
from .stats import FetchStats
from .store_app import AppToken, JournalTickets, StoreTenantToken
from .transport import NoAnswer, PlainHttp, PooledHttp, Reply, shared_tls_context
from .watches import CredentialsWatch, FirstAnswersWatch, RateLimitWatch

T = TypeVar("T")


@dataclass(frozen=True)
class PagingBounds:
    """How far one listing may go before the server is taken to be paging forever.

    ``setting`` names the option that raises the bound, for the message.
    """

    max_pages: int
    max_seconds: float
    setting: str = "max_pages_per_task / max_seconds_per_task"


class HttpGetter(Protocol):
    """What the client needs from the HTTP layer: one GET, its whole answer or NoAnswer."""

    async def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Reply: ...


class FeishuClient:
    """Sends paced, authenticated GETs and turns answers into checked pages or exceptions."""

    def __init__(
        self,
        http: HttpGetter,
        tokens: TokenSource,
        pacing: Pacing,
        retry: RetryPolicy,
        stats: FetchStats | None = None,
        max_requests: int | None = None,
        task_bounds: PagingBounds | None = None,
        listing_bounds: PagingBounds | None = None,
        base_url: str = "",
        max_rate_limited_seconds: float = DEFAULT_MAX_RATE_LIMITED_SECONDS,
        slots: SharedSlots | None = None,
    ) -> None:
        self.max_requests = max_requests
        self.slots = slots  # the cap on requests in flight shared with other tenants' clients
        self.http = http
        self.tokens = tokens
        self.pacing = pacing
        self.retry = retry
        self.stats = stats or FetchStats()
        self.task_bounds = task_bounds or ClientSettings("").task_bounds()
        self.listing_bounds = listing_bounds or ClientSettings("").listing_bounds()
        self.watch = FirstAnswersWatch(base_url or "the server")
        self.credentials = CredentialsWatch()
        self.rate_limits = RateLimitWatch(max_rate_limited_seconds)

    async def get(
        self, path: str, params: dict[str, Any], parse: PageParser[T], endpoint: Endpoint = FOLLOWERS
    ) -> ListPage[T]:
        """The checked page; raises a TaskError for this request, FatalError or BudgetExhausted.

        ``endpoint`` says whose quota the request counts against and how to read its errors.
        """
        attempts = Attempts(self.retry)
        limiter = self.pacing.limiter(endpoint)
        token_renewed = False
        while True:
            token = await self._send_slot(limiter)
            verdict = await self._ask(path, params, token, parse, endpoint)
            match verdict:
                case ListPage():
                    return verdict
                case RateLimited():
                    self.stats.rate_limited += 1
                    self.rate_limits.rate_limited(endpoint)
                    limiter.adapt(verdict.limit, verdict.reset_seconds)
                    limiter.pause(attempts.after_rate_limit(verdict))
                case Transient() | Malformed():
                    await asyncio.sleep(attempts.after_failure(verdict))
                case TokenRejected() if self._may_renew(verdict, token_renewed):
                    self.tokens.invalidate(token)  # the next send fetches a fresh one
                    self.stats.token_refreshes += 1
                    token_renewed = True
                    continue
                case TokenRejected() | Fatal():
                    judged = self.credentials.refused(endpoint, self._fatal(verdict), verdict.as_task_error())
                    if isinstance(judged, TaskError):
                        raise judged
                    await asyncio.sleep(attempts.after_failure(judged))
                case TaskFailed():
                    raise verdict.error
            self.stats.retries += 1

    async def paginate(
        self,
        path: str,
        params: dict[str, Any],
        parse: PageParser[T],
        bounds: PagingBounds,
        endpoint: Endpoint,
        clock: Callable[[], float] = time.monotonic,
    ) -> AsyncIterator[ListPage[T]]:
        """Every page until ``has_more`` is false; raises ProtocolError past the bounds.

        Each page is checked by ``parse`` before it is yielded (``has_more`` true always comes
        with a non-empty page token). A token the server already handed out would loop forever.
        """
        started = clock()
        seen_tokens: set[str] = set()
        page_token = ""
        pages = 0
        while True:
            query = dict(params, page_token=page_token) if page_token else params
            page = await self.get(path, query, parse, endpoint)
            pages += 1
            yield page
            if not page.has_more:
                return
            next_token = page.page_token
            if next_token in seen_tokens or next_token == page_token:
                raise ProtocolError(
                    f"repeated page token: page {pages} hands out a token the server gave before", page.log_id
                )
            _check_bounds(bounds, pages, clock() - started, page.log_id)
            seen_tokens.add(next_token)
            page_token = next_token

    async def _send_slot(self, limiter: PacingLimiter) -> str:
        """Counts the request against the budget, waits for pacing, and returns the token to send."""
        if self.max_requests is not None and self.stats.sent >= self.max_requests:
            raise BudgetExhausted()
        self.rate_limits.check()
        self.stats.sent += 1  # counted before any await, so concurrent requests cannot overshoot
        await limiter.acquire()
        self.rate_limits.check()  # the bound was reached while this one waited out the pause
        return await self.tokens.get()

    async def _ask(
        self, path: str, params: dict[str, Any], token: str, parse: PageParser[T], endpoint: Endpoint
    ) -> ListPage[T] | Verdict:
        """One exchange: the checked page, or the verdict on what came back instead."""
        try:
            reply = await self._send(path, params, {"Authorization": f"Bearer {token}"})
        except NoAnswer as exc:
            failure = Transient(exc.reason, bad_body=exc.bad_body)
            if exc.bad_body:  # an undecodable body is an answer, and not Feishu's; a timeout is neither
                self.watch.note(failure)
            return failure
        self.stats.count_answer()
        verdict = classify(reply.status, reply.headers, reply.body, endpoint.family)
        self.watch.note(verdict)
        if not isinstance(verdict, RateLimited):
            self.rate_limits.answered(endpoint)
        if type(verdict) is Ok or type(verdict) is TaskFailed:  # the credentials got past authentication
            self.credentials.accepted(endpoint)
        return _checked(verdict, parse) if type(verdict) is Ok else verdict

    async def _send(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Reply:
        """One GET, within the process-wide cap on requests in flight when tenants share one."""
        if self.slots is None:
            return await self.http.get(path, params, headers)
        async with self.slots:
            return await self.http.get(path, params, headers)

    def _fatal(self, refusal: TokenRejected | Fatal) -> CredentialsError:
        """The one line for refused credentials, should the refusal prove systematic."""
        if isinstance(refusal, Fatal):
            return CredentialsError(refusal.message)
        return CredentialsError(self.tokens.rejection_message(refusal.code, refusal.msg))

    def _may_renew(self, verdict: TokenRejected, already_renewed: bool) -> bool:
        """A refused tenant token is renewed once per request; a user token cannot be."""
        return not already_renewed and self.tokens.can_refresh and verdict.code in TOKEN_REFRESHABLE_CODES


def _check_bounds(bounds: PagingBounds, pages: int, seconds: float, log_id: str | None) -> None:
    """Raise ProtocolError when a listing that still says "has more" has reached its bounds."""
    if pages >= bounds.max_pages:
        raise ProtocolError(
            f"stopped after {pages} pages: the server still says has_more (the bound is "
            f"{bounds.max_pages} pages; see {bounds.setting})",
            log_id,
        )
    if seconds > bounds.max_seconds:
        raise ProtocolError(
            f"stopped after {pages} pages and {seconds:.0f} s: the server still says has_more "
            f"(the bound is {bounds.max_seconds:g} s; see {bounds.setting})",
            log_id,
        )


def _checked(verdict: Ok, parse: PageParser[T]) -> ListPage[T] | Malformed:
    """The page in ``verdict.data`` if it has the endpoint's shape, else why not."""
    try:
        page = parse(verdict.data)
    except PageError as exc:
        return Malformed(str(exc), verdict.log_id)
    page.log_id = verdict.log_id
    return page


@dataclass
class ClientSettings:
    """Everything needed to talk to one Feishu tenant, and the bounds on how long that may take.

    ``timeout_seconds`` is a whole-request deadline (connect, send, the complete answer), not
    a per-read timeout. ``max_pages_per_task`` / ``max_seconds_per_task`` end a task whose
    server never says "no more pages" (the task fails, the run goes on); the listing of
    ``discover`` has its own, larger, bounds.
    """

    base_url: str
    app_id: str | None = None
    app_secret: str | None = None
    user_access_token: str | None = None
    app_type: str = "custom"  # or "store": the app_ticket → app token → this tenant's token
    tenant_key: str | None = None  # the store app's tenant this client reads
    ticket_journal: str | None = None  # where `listen` records the store app's app_ticket
    request_slots: SharedSlots | None = None  # a cap on requests in flight shared with other tenants
    concurrency: int = DEFAULT_CONCURRENCY
    max_rps: float | None = DEFAULT_MAX_RPS
    max_rpm: float | None = DEFAULT_MAX_RPM
    endpoint_limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_pages_per_task: int = DEFAULT_MAX_PAGES_PER_TASK
    max_seconds_per_task: float = DEFAULT_MAX_SECONDS_PER_TASK
    max_listing_pages: int = DEFAULT_MAX_LISTING_PAGES
    max_listing_seconds: float = DEFAULT_MAX_LISTING_SECONDS
    max_rate_limited_seconds: float = DEFAULT_MAX_RATE_LIMITED_SECONDS
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __repr__(self) -> str:  # never show credentials, even in a debugger or traceback
        return f"ClientSettings(base_url={self.base_url!r}, app_id={self.app_id!r}, ...)"

    def task_bounds(self) -> PagingBounds:
        return PagingBounds(
            max(1, int(self.max_pages_per_task)),
            float(self.max_seconds_per_task),
            "max_pages_per_task / max_seconds_per_task",
        )

    def listing_bounds(self) -> PagingBounds:
        return PagingBounds(
            max(1, int(self.max_listing_pages)),
            float(self.max_listing_seconds),
            "max_listing_pages / max_listing_seconds",
        )


def make_token_source(settings: ClientSettings, token_http: PlainHttp) -> TokenSource:
    """The tokens these credentials call for: a store app's tenant's, a custom app's, or a user's."""
    if settings.app_id and settings.app_secret and settings.app_type == "store":
        if not settings.tenant_key or not settings.ticket_journal:
            raise FatalError(
                "a store app reads one tenant at a time: name it with `run --tenant KEY` (or "
                "--all-tenants), or the source's tenant_key"
            )
        tickets = JournalTickets(settings.ticket_journal, token_http, settings.app_id, settings.app_secret)
        app_token = AppToken(token_http, settings.app_id, settings.app_secret, tickets, settings.retry)
        return StoreTenantToken(token_http, app_token, settings.tenant_key, settings.retry)
    if settings.app_id and settings.app_secret:
        return TenantToken(token_http, settings.app_id, settings.app_secret, settings.retry)
    if settings.user_access_token:
        return UserToken(settings.user_access_token)
    raise FatalError(
        "no credentials: set SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID and "
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET (or "
        "SOURCES__FEISHU_TASKS__CREDENTIALS__USER_ACCESS_TOKEN), or app_id and app_secret "
        "under [sources.feishu_tasks.credentials] in .dlt/secrets.toml"
    )


@asynccontextmanager
async def open_client(
    settings: ClientSettings, stats: FetchStats, max_requests: int | None = None
) -> AsyncIterator[FeishuClient]:
    """One aiohttp pool for the business GETs, one httpx client for the (rare) token requests."""
    deadline = settings.timeout_seconds
    pooled = PooledHttp(settings.base_url, settings.concurrency, deadline)
    try:
        async with httpx.AsyncClient(
            base_url=settings.base_url, timeout=deadline, verify=shared_tls_context()
        ) as http:
            tokens = make_token_source(settings, PlainHttp(http, deadline))
            pacing = Pacing(settings.max_rps, settings.max_rpm, settings.endpoint_limits)
            yield FeishuClient(
                pooled,
                tokens,
                pacing,
                settings.retry,
                stats,
                max_requests,
                settings.task_bounds(),
                settings.listing_bounds(),
                settings.base_url,
                settings.max_rate_limited_seconds,
                settings.request_slots,
            )
    finally:
        await pooled.aclose()
