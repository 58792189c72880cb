"""Test doubles shared by the unit tiers: a clock that moves only when something sleeps."""

from __future__ import annotations

import asyncio

from feishu_tasks.ratelimit import PacingLimiter


class FakeClock:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def send_times(limiter: PacingLimiter, clock: FakeClock, requests: int, workers: int = 8) -> list[float]:
    """When each of ``requests`` acquires returned, with ``workers`` tasks competing."""
    times: list[float] = []

    async def worker(share: int) -> None:
        for _ in range(share):
            await limiter.acquire()
            times.append(clock.now)

    async def main() -> None:
        shares = [requests // workers + (i < requests % workers) for i in range(workers)]
        await asyncio.gather(*(worker(n) for n in shares))

    asyncio.run(main())
    return times
