"""The tenant token endpoint: ``POST /open-apis/auth/v3/tenant_access_token/internal``.

Its answer is flat (``{code, msg, tenant_access_token, expire}``, no ``data``), bad
credentials are HTTP 200 / 10003, and it has faults of its own that count down (429, 500, a
bad body, a spoiled ``expire``).  Which tokens are issued and accepted is ``auth.TokenStore``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from ..auth import TokenStore
from ..faults import Faults
from ..stats import Stats
from .answers import Answer, fail
from .bad_answers import bad_body_response
from .gateway import Gateway

PATH = "/open-apis/auth/v3/tenant_access_token/internal"
BAD_CREDENTIALS = (10003, "invalid param")
TOKEN_INTERNAL_ERROR = (-1, "internal error")
TOKEN_RATE_LIMIT = 5  # x-ogw-ratelimit-limit of the token endpoint's 429s


class TokenApi:
    """Hands out tenant tokens for the one app the simulator serves."""

    def __init__(self, gateway: Gateway, tokens: TokenStore, stats: Stats) -> None:
        self.gateway = gateway
        self.tokens = tokens
        self.stats = stats

    async def token(self, request: web.Request, faults: Faults) -> web.StreamResponse:
        """Tenant token for the app: flat answer, bad credentials are HTTP 200 / 10003."""
        arrived = time.time()
        if faults.latency_on_token and faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not self.tokens.credentials_ok(
            body.get("app_id"), body.get("app_secret")
        ):
            answer = fail(BAD_CREDENTIALS, 200)
        else:
            token, expire = self.tokens.issue(faults.token_ttl_seconds, faults.tenant_token_prefix)
            answer = (200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire})
            _spoil_expire(answer[1], faults.token_expire)
        response = await self.token_response(request, answer, faults)
        self.stats.record("token", response.status, arrived)
        return response

    async def token_response(
        self, request: web.Request, answer: Answer, faults: Faults
    ) -> web.StreamResponse:
        """The token answer, unless a token fault (429, 500, bad body; each counts down) replaces it."""
        gateway = self.gateway
        if faults.token_rate_limit_times > 0:
            faults.token_rate_limit_times -= 1
            reset = faults.token_rate_limit_reset_seconds
            return gateway.rate_limited(faults, TOKEN_RATE_LIMIT, reset, status=429)
        if faults.token_error_500_times > 0:
            faults.token_error_500_times -= 1
            return gateway.json_response(fail(TOKEN_INTERNAL_ERROR, 500))
        if faults.token_bad_body_times > 0:
            faults.token_bad_body_times -= 1
            kind, interval = faults.token_bad_body_kind, faults.trickle_interval_seconds
            return await bad_body_response(request, kind, answer, gateway.log_id(), interval)
        return gateway.json_response(answer)


def _spoil_expire(answer: dict[str, Any], mode: str) -> None:
    """Replace a token answer's ``expire`` as ``Faults.token_expire`` says ("real" keeps it)."""
    if mode == "missing":
        del answer["expire"]
    elif mode != "real":
        answer["expire"] = {"zero": 0, "negative": -60, "null": None, "string": "soon", "tiny": 0.001}[mode]
