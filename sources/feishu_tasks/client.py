"""One GET against a Feishu business endpoint, with everything the API makes us handle.

Pacing, the bearer token (refreshed once on a token error), 429 waits, backoff on transient
failures, and the decision whether an answer is data, a per-task error or fatal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from .auth import TenantToken, TokenSource, UserToken
from .errors import ApiError, BudgetExhausted, FatalError, RetriesExhausted
from .ratelimit import PacingLimiter
from .retry import RetryPolicy
from .settings import (
    CODE_OK,
    CODE_RATE_LIMITED,
    CODE_WRONG_TOKEN_TYPE,
    TOKEN_ERROR_CODES,
    TOKEN_REFRESHABLE_CODES,
    TRANSIENT_CODES,
)
from .stats import FetchStats
from .transport import ShardedHttp
from .wire import float_header, log_id_of, parse_json_body


class HttpGetter(Protocol):
    """What the client needs from the HTTP layer: one GET, its body read (see ``fetcher``)."""

    async def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> httpx.Response: ...


@dataclass
class Page:
    """The ``data`` object of a successful answer and the request's log id."""

    data: dict[str, Any]
    log_id: str | None


class FeishuClient:
    """Sends paced, authenticated GETs and turns answers into data or exceptions."""

    def __init__(
        self,
        http: HttpGetter,
        tokens: TokenSource,
        limiter: PacingLimiter,
        retry: RetryPolicy,
        stats: FetchStats | None = None,
        max_requests: int | None = None,
    ) -> None:
        self.max_requests = max_requests
        self.http = http
        self.tokens = tokens
        self.limiter = limiter
        self.retry = retry
        self.stats = stats or FetchStats()

    async def get(self, path: str, params: dict[str, Any]) -> Page:
        """The answer's data; raises ApiError, RetriesExhausted or FatalError otherwise."""
        failures = 0
        rate_limit_waits = 0
        token_replayed = False
        last_error, last_code, last_log_id = "", None, None
        while True:
            if self.max_requests is not None and self.stats.sent >= self.max_requests:
                raise BudgetExhausted()
            self.stats.sent += 1  # counted before any await, so concurrent requests cannot overshoot
            await self.limiter.acquire()
            token = await self.tokens.get()
            try:
                response = await self.http.get(path, params, {"Authorization": f"Bearer {token}"})
            except httpx.TransportError as exc:  # timeouts, refused and dropped connections
                last_error, last_code, last_log_id = f"{type(exc).__name__} (no answer)", None, None
                failures += 1
            else:
                body = parse_json_body(response)
                log_id = log_id_of(response, body)
                self.stats.count_answer()
                code = body.get("code") if body is not None else None
                if body is not None and code == CODE_OK:
                    data = body.get("data")
                    return Page(data if isinstance(data, dict) else {}, log_id)

                if response.status_code == 429 or code == CODE_RATE_LIMITED:
                    self.stats.rate_limited += 1
                    rate_limit_waits += 1
                    last_error, last_code, last_log_id = "rate limited", code, log_id
                    if rate_limit_waits > self.retry.max_rate_limit_waits:
                        raise RetriesExhausted(failures + rate_limit_waits, last_error, code, log_id)
                    reset = float_header(response, "x-ogw-ratelimit-reset")
                    limit = float_header(response, "x-ogw-ratelimit-limit")
                    self.limiter.adapt(int(limit) if limit else None, reset)
                    self.limiter.pause(self.retry.rate_limit_wait(reset))
                    self.stats.retries += 1
                    continue

                if body is None:
                    if response.status_code < 500:
                        raise FatalError(
                            f"{response.request.url.copy_with(query=None)} answered HTTP "
                            f"{response.status_code} without a JSON body; check base_url"
                        )
                    last_error, last_code, last_log_id = (
                        f"HTTP {response.status_code} with a non-JSON body",
                        None,
                        log_id,
                    )
                    failures += 1
                elif code in TOKEN_ERROR_CODES:
                    if self.tokens.can_refresh and code in TOKEN_REFRESHABLE_CODES and not token_replayed:
                        self.tokens.invalidate(token)
                        self.stats.token_refreshes += 1
                        token_replayed = True
                        continue
                    raise FatalError(self.tokens.rejection_message(code, str(body.get("msg", ""))))
                elif code == CODE_WRONG_TOKEN_TYPE:
                    raise FatalError(
                        f"Feishu says the token is neither a user nor a tenant token (code {code}); "
                        "configure app_id/app_secret or a user access token (u-...)"
                    )
                elif code in TRANSIENT_CODES or response.status_code >= 500:
                    last_error = f"HTTP {response.status_code}, code {code}: {body.get('msg', '')}"
                    last_code, last_log_id = code, log_id
                    failures += 1
                else:
                    raise ApiError(response.status_code, code, str(body.get("msg", "")), log_id)

            if failures >= self.retry.max_attempts:
                raise RetriesExhausted(failures + rate_limit_waits, last_error, last_code, last_log_id)
            self.stats.retries += 1
            await asyncio.sleep(self.retry.backoff(failures))


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
            stats.pacing = limiter.rules  # for the progress display's ETA and the summary
            yield FeishuClient(sharded, tokens, limiter, settings.retry, stats, max_requests)
    finally:
        await sharded.aclose()
