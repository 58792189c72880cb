"""CPU per request of the hot path's HTTP layer alone: httpx transports against aiohttp.

    python bench/http_layer.py [--tasks 5000] [--rounds 2]

Starts the simulator (no latency), then GETs every task's first follower page, 32 in flight,
through (a) httpx: 8 ``AsyncHTTPTransport`` pools of 4 connections with prebuilt requests (the
connector's transport until 2026-12, ~3x cheaper than one ``AsyncClient``), and (b) the
connector's ``PooledHttp`` (aiohttp). Prints the client's CPU seconds (user + system, this
process only; the simulator is another process) per request; rounds alternate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import SEED, simulator  # noqa: E402

from feishu_tasks.transport import PooledHttp  # noqa: E402

Get = Callable[[str], Awaitable[bytes]]
PARAMS = {"page_size": 50, "user_id_type": "open_id"}


async def fetch_all(paths: list[str], get: Get, concurrency: int = 32) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)

    async def worker() -> None:
        while not queue.empty():
            json.loads(await get(queue.get_nowait()))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def with_httpx(base: str, headers: dict[str, str], paths: list[str]) -> None:
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(8)]
    busy = [0] * len(pools)

    async def get(path: str) -> bytes:
        request = httpx.Request("GET", f"{base}{path}?{urlencode(PARAMS)}", headers=headers)
        shard = min(range(len(pools)), key=busy.__getitem__)
        busy[shard] += 1
        try:
            response = await pools[shard].handle_async_request(request)
            body = await response.aread()
            await response.aclose()
            return body
        finally:
            busy[shard] -= 1

    await fetch_all(paths, get)
    for pool in pools:
        await pool.aclose()


async def with_aiohttp(base: str, headers: dict[str, str], paths: list[str]) -> None:
    http = PooledHttp(base, 32, 30)

    async def get(path: str) -> bytes:
        return (await http.get(path, PARAMS, headers)).body

    await fetch_all(paths, get)
    await http.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from feishu_simulator import World

    ids = World.generate(tasks=args.tasks, seed=SEED).task_ids()
    paths = [f"/open-apis/task/v1/tasks/{task_id}/followers" for task_id in ids]
    with simulator(args.tasks) as base:
        answer = httpx.post(
            f"{base}/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": "cli_demo", "app_secret": "demo-secret"},
        )
        headers = {"Authorization": f"Bearer {answer.json()['tenant_access_token']}"}
        layers: list[tuple[str, Callable[..., Awaitable[None]]]] = [
            ("httpx transports", with_httpx),
            ("aiohttp (PooledHttp)", with_aiohttp),
        ]
        for _ in range(args.rounds):
            for name, layer in layers:
                before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
                asyncio.run(layer(base, headers, paths))
                after: Any = resource.getrusage(resource.RUSAGE_SELF)
                cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                print(
                    f"{name:22} {len(paths)} requests: wall {time.monotonic() - started:.2f} s, "
                    f"client CPU {cpu:.2f} s = {cpu / len(paths) * 1e6:.0f} us/request",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
