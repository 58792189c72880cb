"""The wire: requests with a whole-request deadline and a bounded body, as ``Reply`` or ``NoAnswer``.

The business GETs (one per follower page: the hot path) go through aiohttp (``PooledHttp``);
the rare token POST through httpx (``PlainHttp``). Per-operation timeouts (connect, each read)
never trip for a server that sends one byte every few seconds: ``asyncio.timeout`` around the
whole exchange does. Both decode gzip/deflate themselves; a body that does not decode becomes a
``NoAnswer`` marked as a bad body, so it is retried like a 5xx.

``sniffio`` is a declared dependency: httpcore asks for it on every request, and where it is
missing each ask is a failed import that searches sys.path anew (~15 % of the client's CPU).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from functools import cache
from typing import Any, NamedTuple
from urllib.parse import urlencode

import aiohttp
import httpx
import yarl

MAX_BODY_BYTES = 8 * 1024 * 1024  # a follower page is ~5 KB, a task page well under 1 MB


@cache
def shared_tls_context() -> ssl.SSLContext:
    """One TLS context (httpx's CA bundle) for every client of the process.

    Each context holds the parsed CA bundle, ~0.8 MB: a store app's 20 tenants, each with its
    aiohttp pool and its httpx client, held 40 of them. A context only configures connections,
    so sharing it across threads and event loops is safe (aiohttp shares its default one too).
    """
    return httpx.create_ssl_context()


class Reply(NamedTuple):
    """A complete answer: what ``responses.classify`` needs."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (httpx.Headers, aiohttp's CIMultiDictProxy)
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
    return await read_limited(response.aiter_bytes())


async def read_limited(chunks: Any) -> bytes:
    """The decoded body from an async iterator of chunks, at most ``MAX_BODY_BYTES`` of it."""
    parts = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise NoAnswer(f"the body is over {MAX_BODY_BYTES // 1_048_576} MiB", bad_body=True)
        parts.append(chunk)
    return b"".join(parts)


class PooledHttp:
    """GETs through one aiohttp connection pool of ``concurrency`` connections: the hot path.

    Why aiohttp and not httpx here: CPU per request, which bounds a run against a fast server.
    Measured against the simulator (bench/http_layer.py: 5,000 follower pages, 32 in flight):
    httpx transports (8 pools of 4 connections, itself ~3x cheaper than one AsyncClient) 620-840
    us of client CPU per request, aiohttp 125-220 us (its HTTP parser is C, and no anyio layer).
    The same TLS context (httpx's CA bundle) and the same deadline and body bounds.
    """

    def __init__(self, base_url: str, concurrency: int, deadline_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline_seconds
        self._limit = max(1, concurrency)
        self._tls = shared_tls_context()  # loading the CA bundle costs ~30 ms and ~0.8 MB: once
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        """The session, made inside the running event loop (aiohttp binds it there)."""
        connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._tls)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Reply:
        """The whole answer within the deadline; raises NoAnswer otherwise."""
        url = f"{self.base_url}{path}?{urlencode(params)}" if params else f"{self.base_url}{path}"
        try:
            target = yarl.URL(url, encoded=True)  # sent as built: our path segments are quoted already
        except (ValueError, TypeError) as exc:
            raise NoAnswer(f"the request cannot be built ({exc})") from None
        session = self._session or self._open()
        try:
            async with asyncio.timeout(self.deadline):
                async with session.get(target, headers=headers, allow_redirects=False) as response:
                    body = await read_limited(response.content.iter_any())
                    return Reply(response.status, response.headers, body)
        except TimeoutError:
            raise NoAnswer(f"no complete answer within the {self.deadline:g} s deadline") from None
        except aiohttp.ClientPayloadError:  # includes a Content-Encoding that does not decode
            raise NoAnswer("the body does not decode (Content-Encoding)", bad_body=True) from None
        except aiohttp.ClientError as exc:
            raise NoAnswer(f"{type(exc).__name__} (no answer)") from None
        except ValueError as exc:  # a header no server could be sent
            raise NoAnswer(f"the request cannot be built ({exc})") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


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
