"""Access tokens: a tenant token from app credentials (cached, refreshed) or a user token.

Tokens and the app secret live only in these objects and in request headers; no message
built here contains them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from .errors import BadAnswersError, CredentialsError, FatalError, TaskError
from .responses import (
    CredentialsRefused,
    Malformed,
    RateLimited,
    TokenIssued,
    TokenVerdict,
    Transient,
    classify_token,
)
from .retry import Attempts, RetryPolicy
from .settings import TENANT_TOKEN_PATH, TOKEN_REFRESH_MARGIN_SECONDS
from .transport import NoAnswer, PlainHttp

log = logging.getLogger("feishu_tasks")

# When ``expire`` is missing, zero, negative or not a number: assume this lifetime (the token
# is refreshed half-way) and rely on the on-demand renewal if the server refuses it sooner.
TOKEN_FALLBACK_LIFETIME_SECONDS = 600.0
# Never ask for a new token more often than this, whatever ``expire`` says.
TOKEN_MIN_REFRESH_SECONDS = 1.0


def refresh_delay(lifetime_seconds: float) -> float:
    """Seconds until a token of this lifetime is refreshed: a margin early, never too often."""
    margin = min(TOKEN_REFRESH_MARGIN_SECONDS, lifetime_seconds / 2)
    return max(TOKEN_MIN_REFRESH_SECONDS, lifetime_seconds - margin)


class TokenSource(Protocol):
    """What the client needs from a token supplier."""

    can_refresh: bool

    async def get(self) -> str: ...

    def invalidate(self, token: str) -> None: ...

    def rejection_message(self, code: int | None, msg: str) -> str: ...


class UserToken:
    """A user access token passed through as given; it cannot be refreshed here."""

    can_refresh = False

    def __init__(self, token: str) -> None:
        self._token = token

    async def get(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        """Nothing to do: without a refresh token a user token cannot be renewed."""

    def rejection_message(self, code: int | None, msg: str) -> str:
        return (
            f"Feishu rejected the user access token (code {code}: {msg}); supply a fresh one "
            "in SOURCES__FEISHU_TASKS__CREDENTIALS__USER_ACCESS_TOKEN or use app_id/app_secret instead"
        )


class CachedToken:
    """A token fetched when first needed, shared by every request, renewed before it expires.

    The token endpoints get the same care as the business endpoints: rate limits are waited out
    (``x-ogw-ratelimit-reset``), 5xx, timeouts and bad bodies are retried with backoff. Only an
    endpoint's own non-zero ``code`` says the credentials are wrong (``_issue`` decides what that
    means). Subclasses say what to ask for.
    """

    can_refresh = True

    def __init__(
        self,
        http: PlainHttp,
        retry: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self._warned_expire = False

    async def get(self) -> str:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:  # one refresh for all concurrent requests
            if self._token is None or self._clock() >= self._refresh_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Drop the cached token if it is the one the server refused (not a newer one)."""
        if self._token == token:
            self._token = None

    async def _issue(self) -> TokenIssued:
        raise NotImplementedError

    async def _fetch(self) -> None:
        issued = await self._issue()
        lifetime = issued.expire_seconds
        if lifetime is None:
            lifetime = TOKEN_FALLBACK_LIFETIME_SECONDS
            self._warn_unusable_expire()
        self._token = issued.token
        self._refresh_at = self._clock() + refresh_delay(lifetime)

    async def _post(self, path: str, payload: dict[str, str], field: str) -> TokenIssued | CredentialsRefused:
        """POST until the endpoint issues a token or refuses; FatalError when it never answers."""
        attempts = Attempts(self._retry)
        while True:
            try:
                reply = await self._http.post_json(path, payload)
                verdict: TokenVerdict = classify_token(reply.status, reply.headers, reply.body, field)
            except NoAnswer as exc:
                verdict = Transient(exc.reason, bad_body=exc.bad_body)
            try:
                match verdict:
                    case TokenIssued() | CredentialsRefused():
                        return verdict
                    case RateLimited():
                        wait = attempts.after_rate_limit(verdict)
                    case Transient() | Malformed():
                        wait = attempts.after_failure(verdict)
            except TaskError as exc:
                raise self._unreachable(path, field, verdict, exc) from None
            await self._sleep(wait)

    def _unreachable(self, path: str, field: str, last: TokenVerdict, exc: TaskError) -> FatalError:
        """The one line when a token endpoint never gave a token: its last answer, and what to check."""
        where = f"the token endpoint {self._http.base_url}{path}"
        if isinstance(last, Transient) and last.bad_body:
            return BadAnswersError(f"{where} does not answer like the Feishu API ({exc}); check base_url")
        what = field.replace("_", " ")
        return FatalError(f"could not get a {what} from {where} ({exc}); check base_url and the network")

    def _warn_unusable_expire(self) -> None:
        if not self._warned_expire:
            self._warned_expire = True
            log.warning(
                "the token endpoint answered without a usable 'expire' (missing, zero, negative or not a "
                "number): assuming %.0f s and refreshing after %.0f s; a refused token is renewed at once",
                TOKEN_FALLBACK_LIFETIME_SECONDS,
                refresh_delay(TOKEN_FALLBACK_LIFETIME_SECONDS),
            )


class TenantToken(CachedToken):
    """Tenant access token of a self-built (custom) app, from its app id and secret."""

    def __init__(
        self,
        http: PlainHttp,
        app_id: str,
        app_secret: str,
        retry: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(http, retry, clock, sleep)
        self.app_id = app_id
        self._app_secret = app_secret

    def rejection_message(self, code: int | None, msg: str) -> str:
        return (
            f"Feishu rejected a freshly issued tenant access token for app_id {self.app_id!r} "
            f"(code {code}: {msg}); check that the app is enabled for this tenant and has the "
            "task:task:readonly scope"
        )

    async def _issue(self) -> TokenIssued:
        payload = {"app_id": self.app_id, "app_secret": self._app_secret}
        verdict = await self._post(TENANT_TOKEN_PATH, payload, "tenant_access_token")
        if isinstance(verdict, CredentialsRefused):
            raise CredentialsError(
                f"Feishu refused the app credentials for app_id {self.app_id!r} "
                f"(code {verdict.code}: {verdict.msg}); check SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID "
                "and SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET"
            )
        return verdict
