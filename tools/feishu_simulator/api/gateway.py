"""The gateway in front of every business endpoint: auth, quotas, storms, server errors, answers.

Feishu's gateway checks the token and the rate limits before a request reaches the task
service, and stamps every answer with a log id; this module plays that part for every
handler family alike, so a family only says what its endpoints answer.  A business request
costs an auth lookup, a quota check, a few optional dice rolls and one page render.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import secrets
import time

from aiohttp import web

from ..auth import WRONG_TOKEN_TYPE, TokenStore
from ..faults import Faults
from ..quota import EndpointQuotas
from ..stats import Stats
from .answers import FAULT_KEY, JSON_TYPE, Answer, Error, Route, fail
from .bad_answers import bad_body_response, is_body_kind, spoil_page

log = logging.getLogger(__name__)

RATE_LIMITED = (99991400, "request trigger frequency limit")
STORM_LIMIT_HEADER = 50  # x-ogw-ratelimit-limit for random storms when no per-second quota is set
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class Gateway:
    """Token checks, quota windows, the fault dice and log ids, shared by every route."""

    def __init__(self, tokens: TokenStore, stats: Stats, faults: Faults) -> None:
        self.tokens = tokens
        self.stats = stats
        self.quota = EndpointQuotas()
        self._rng = random.Random(faults.seed)
        self._rng_key: tuple[int, int] = (id(faults), faults.seed)
        self._salt = secrets.token_hex(3).upper()
        self._counter = itertools.count(1)
        self._stamp_second = -1
        self._stamp = ""

    # ------------------------------------------------------------------ one business request
    async def serve(self, route: Route, request: web.Request, faults: Faults) -> web.StreamResponse:
        """Latency, the gate, the handler (a bug answers like a server), the answer, the stats."""
        arrived = time.time()
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        response: web.StreamResponse | None = self.gate(request, faults, route.endpoint, route.server_error)
        if response is None:
            try:
                answer = route.handler(request, faults)
            except Exception:  # a simulator bug must still answer like a server
                log.exception("simulator handler failed")
                answer = fail(route.server_error, 500)
            response = await self.respond(request, answer, faults)
        limited = "x-ogw-ratelimit-limit" in response.headers
        self.stats.record(route.endpoint, response.status, arrived, rate_limited=limited)
        return response

    def gate(
        self, request: web.Request, faults: Faults, endpoint: str, server_error: Error
    ) -> web.Response | None:
        """Auth, random rate-limit storm, quota, random 502/500 -- in that order.

        Storm and quota rejections do not consume quota; 502/500 answers do
        (they happen behind the gateway).  Auth failures consume nothing.
        Each endpoint has its own quota windows (``Faults.quota_for``).
        """
        error = self.tokens.check(request.headers.get("Authorization"))
        if error is not None:
            status = 403 if error == WRONG_TOKEN_TYPE else faults.token_error_http_status
            return self.json_response(fail(error, status))
        dice = self.dice(faults)
        per_second, per_minute = faults.quota_for(endpoint)
        if faults.rate_limit_fraction > 0 and dice.random() < faults.rate_limit_fraction:
            return self.rate_limited(faults, per_second or STORM_LIMIT_HEADER, faults.storm_reset_seconds)
        over = self.quota.admit(endpoint, per_second, per_minute, time.monotonic())
        if over is not None:
            return self.rate_limited(faults, *over)
        if faults.html_502_fraction > 0 and dice.random() < faults.html_502_fraction:
            return web.Response(
                status=502,
                body=HTML_502,
                headers={"Content-Type": "text/html", "X-Tt-Logid": self.log_id()},
            )
        if faults.error_500_fraction > 0 and dice.random() < faults.error_500_fraction:
            return self.json_response(fail(server_error, 500))
        return None

    async def respond(self, request: web.Request, answer: Answer, faults: Faults) -> web.StreamResponse:
        """The answer as JSON, or spoiled as the handler's targeted fault or a random one says."""
        kind = request.get(FAULT_KEY) or self.random_bad_kind(faults)
        if kind is None:
            return self.json_response(answer)
        if is_body_kind(kind):
            interval = faults.trickle_interval_seconds
            return await bad_body_response(request, kind, answer, self.log_id(), interval)
        return self.json_response(spoil_page(answer, kind))

    def random_bad_kind(self, faults: Faults) -> str | None:
        """A kind from ``random_bad_kinds`` for ``bad_answer_fraction`` of the answers, else None."""
        if faults.bad_answer_fraction <= 0 or not faults.random_bad_kinds:
            return None
        dice = self.dice(faults)
        if dice.random() >= faults.bad_answer_fraction:
            return None
        return dice.choice(faults.random_bad_kinds)

    # ------------------------------------------------------------------ plumbing every route uses
    def log_id(self) -> str:
        """A unique log id shaped like the real ones: UTC timestamp + hex."""
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
        return f"{self._stamp}{self._salt}{next(self._counter):012X}"

    def dice(self, faults: Faults) -> random.Random:
        """The fault generator, reseeded when the Faults object or its seed changes."""
        key = (id(faults), faults.seed)
        if key != self._rng_key:
            self._rng_key = key
            self._rng = random.Random(faults.seed)
        return self._rng

    def json_response(self, answer: Answer, headers: dict[str, str] | None = None) -> web.Response:
        """Serialize an answer; error bodies get the ``error`` block with the log id."""
        status, body = answer
        log_id = self.log_id()
        if body.get("code"):
            body["error"] = {
                "log_id": log_id,
                "troubleshooter": (
                    "排查建议查看(Troubleshooting suggestions): https://open.feishu.cn/search"
                    f"?from=openapi&log_id={log_id}&code={body['code']}"
                ),
            }
        all_headers = {"Content-Type": JSON_TYPE, "X-Tt-Logid": log_id}
        if headers:
            all_headers.update(headers)
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return web.Response(status=status, body=payload, headers=all_headers)

    def rate_limited(self, faults: Faults, limit: int, reset: int, status: int | None = None) -> web.Response:
        """The gateway's rate-limit answer with its two headers (reset = seconds to wait)."""
        return self.json_response(
            fail(RATE_LIMITED, status or faults.rate_limit_http_status),
            {"x-ogw-ratelimit-limit": str(limit), "x-ogw-ratelimit-reset": str(reset)},
        )

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """Unknown path or method: a gateway-style plain-text 404 (not JSON)."""
        self.stats.record("not_found", 404, time.time())
        return web.Response(
            status=404,
            body=b"404 page not found",
            headers={"Content-Type": "text/plain; charset=utf-8", "X-Tt-Logid": self.log_id()},
        )
