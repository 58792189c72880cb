"""Access tokens: a tenant token from app credentials (cached, refreshed) or a user token.

Tokens and the app secret live only in these objects and in request headers; no message
built here contains them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import httpx

from .errors import FatalError
from .retry import RetryPolicy
from .settings import TENANT_TOKEN_PATH, TOKEN_REFRESH_MARGIN_SECONDS
from .wire import parse_json_body


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
            "in SOURCES__FEISHU_TASKS__USER_ACCESS_TOKEN or use app_id/app_secret instead"
        )


class TenantToken:
    """Tenant access token of a self-built app, fetched once and refreshed before it expires."""

    can_refresh = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        app_id: str,
        app_secret: str,
        retry: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.app_id = app_id
        self._app_secret = app_secret
        self._retry = retry
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

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

    def rejection_message(self, code: int | None, msg: str) -> str:
        return (
            f"Feishu rejected a freshly issued tenant access token for app_id {self.app_id!r} "
            f"(code {code}: {msg}); check that the app is enabled for this tenant and has the "
            "task:task:readonly scope"
        )

    async def _fetch(self) -> None:
        body = await self._post_for_token()
        code = body.get("code")
        if code != 0 or not body.get("tenant_access_token"):
            raise FatalError(
                f"Feishu refused the app credentials for app_id {self.app_id!r} "
                f"(code {code}: {body.get('msg', '')}); check SOURCES__FEISHU_TASKS__APP_ID "
                "and SOURCES__FEISHU_TASKS__APP_SECRET"
            )
        expire = float(body.get("expire") or 0)
        margin = min(TOKEN_REFRESH_MARGIN_SECONDS, expire / 2)
        self._token = str(body["tenant_access_token"])
        self._refresh_at = self._clock() + max(0.0, expire - margin)
        self.fetches += 1

    async def _post_for_token(self) -> dict:
        payload = {"app_id": self.app_id, "app_secret": self._app_secret}
        last_error = ""
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                response = await self._http.post(TENANT_TOKEN_PATH, json=payload)
            except httpx.HTTPError as exc:
                last_error = type(exc).__name__
            else:
                body = parse_json_body(response)
                if body is not None and response.status_code < 500:
                    return body
                if response.status_code < 500 and response.status_code != 429:
                    raise FatalError(
                        f"the token endpoint at {self._http.base_url} answered HTTP "
                        f"{response.status_code} without a JSON body; check base_url"
                    )
                last_error = f"HTTP {response.status_code}"
            await asyncio.sleep(self._retry.backoff(attempt))
        raise FatalError(
            f"could not obtain a tenant access token from {self._http.base_url} "
            f"({last_error} after {self._retry.max_attempts} attempts); check base_url and the network"
        )
