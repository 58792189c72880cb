"""The wire: GETs through several small httpx connection pools.

``sniffio`` is a declared dependency: httpcore asks for it on every request, and where it is
missing each ask is a failed import that searches sys.path anew (~15 % of the client's CPU).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import httpx

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
