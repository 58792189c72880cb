"""The wire: requests with a whole-request deadline and a bounded body, as ``Reply`` or ``NoAnswer``.

httpx's timeouts are per operation (connect, each read): a server that sends one byte every
few seconds never trips them. ``asyncio.timeout`` around the whole exchange does. httpx also
decodes gzip/deflate itself; a body that does not decode raises ``httpx.DecodingError``,
which here becomes a ``NoAnswer`` marked as a bad body, so it is retried like a 5xx.

``sniffio`` is a declared dependency: httpcore asks for it on every request, and where it is
missing each ask is a failed import that searches sys.path anew (~15 % of the client's CPU).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, NamedTuple
from urllib.parse import urlencode

import httpx

POOL_SIZE = 4  # connections per httpx pool; see ShardedHttp
MAX_BODY_BYTES = 8 * 1024 * 1024  # a follower page is ~5 KB, a task page well under 1 MB


class Reply(NamedTuple):
    """A complete answer: what ``responses.classify`` needs."""

    status: int
    headers: httpx.Headers
    body: bytes


class NoAnswer(Exception):
    """No usable answer arrived: timeout, dropped connection, an undecodable or oversized body."""

    def __init__(self, reason: str, bad_body: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.bad_body = bad_body


def no_answer(exc: BaseException, deadline: float) -> NoAnswer:
    """The ``NoAnswer`` for what httpx or the deadline raised."""
    if isinstance(exc, TimeoutError):
        return NoAnswer(f"no complete answer within the {deadline:g} s deadline")
    if isinstance(exc, httpx.DecodingError):
        return NoAnswer("the body does not decode (Content-Encoding)", bad_body=True)
    return NoAnswer(f"{type(exc).__name__} (no answer)")


async def read_body(response: httpx.Response) -> bytes:
    """The decoded body, at most ``MAX_BODY_BYTES`` of it (a gzip bomb is cut off too)."""
    chunks = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise NoAnswer(f"the body is over {MAX_BODY_BYTES // 1_048_576} MiB", bad_body=True)
        chunks.append(chunk)
    return b"".join(chunks)


class ShardedHttp:
    """GETs through several small httpx connection pools, each request to the least busy one.

    Why not one ``httpx.AsyncClient``: its pool does O(connections) work per request, and the
    client layer (URL merging, cookies, auth and redirect hooks) costs more than the wire.
    Measured against the simulator on 2 cores (bench/): one AsyncClient with 16-32 connections
    ~550-750 req/s; 4-8 AsyncClients of 4 connections ~1,200-1,400 req/s; the same pools as bare
    ``httpx.AsyncHTTPTransport`` with prebuilt requests ~2,100-2,400 req/s. We need none of the
    client-layer features on this path (no redirects, cookies or auth flows), so it is the last.
    """

    def __init__(self, base_url: str, concurrency: int, deadline_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline_seconds
        self._timeout = httpx.Timeout(deadline_seconds).as_dict()
        count = max(1, math.ceil(concurrency / POOL_SIZE))
        limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
        tls = httpx.create_ssl_context()  # loading the CA bundle costs ~30 ms: once, not per pool
        self._pools = [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(count)]
        self._busy = [0] * count

    async def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Reply:
        """The whole answer within the deadline; raises NoAnswer otherwise."""
        url = f"{self.base_url}{path}?{urlencode(params)}" if params else f"{self.base_url}{path}"
        try:
            request = httpx.Request("GET", url, headers=headers, extensions={"timeout": self._timeout})
        except (httpx.InvalidURL, ValueError) as exc:  # a URL or header no server could be sent
            raise NoAnswer(f"the request cannot be built ({exc})") from None
        shard = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[shard] += 1
        try:
            async with asyncio.timeout(self.deadline):
                response = await self._pools[shard].handle_async_request(request)
                try:
                    body = await read_body(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.HTTPError) as exc:
            raise no_answer(exc, self.deadline) from None
        finally:
            self._busy[shard] -= 1
        return Reply(response.status_code, response.headers, body)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class PlainHttp:
    """An ``httpx.AsyncClient`` for the rare requests off the hot path (the token POST), same rules."""

    def __init__(self, client: httpx.AsyncClient, deadline_seconds: float) -> None:
        self.client = client
        self.deadline = deadline_seconds

    @property
    def base_url(self) -> str:
        return str(self.client.base_url).rstrip("/")

    async def post_json(self, path: str, payload: dict[str, Any]) -> Reply:
        """The whole answer within the deadline; raises NoAnswer otherwise."""
        try:
            async with asyncio.timeout(self.deadline):
                async with self.client.stream("POST", path, json=payload) as response:
                    body = await read_body(response)
        except (TimeoutError, httpx.HTTPError) as exc:
            raise no_answer(exc, self.deadline) from None
        return Reply(response.status_code, response.headers, body)
