"""One cap on the requests in flight across every tenant a process loads side by side.

Each tenant's fetch runs its own event loop in its own thread (one dlt pipeline each), paced on
its own quota; ``asyncio.Semaphore`` belongs to one loop, so the cap they share is this: a count
under a thread lock, and a waiter is woken on its own loop (``call_soon_threadsafe``), the freed
slot handed straight to it (first come, first served), so no tenant starves another.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from types import TracebackType


class SharedSlots:
    """At most ``limit`` holders at once, from any thread's event loop."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the cap on requests in flight must be at least 1")
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.in_use < self.limit and not self._waiters:
                self._take()
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter  # the slot was handed over (in_use already counts it)
        except asyncio.CancelledError:
            with self._lock:
                if (loop, waiter) in self._waiters:
                    self._waiters.remove((loop, waiter))
                    raise
            self.release()  # cancelled after the hand-over: give the slot back
            raise

    def _take(self) -> None:
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                if loop.is_closed():
                    continue
                loop.call_soon_threadsafe(_hand_over, waiter)
                return  # the slot passes to the waiter: in_use unchanged
            self.in_use -= 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _hand_over(waiter: asyncio.Future[None]) -> None:
    if waiter.cancelled():  # cancelled before the hand-over ran: its acquire() gives the slot back
        return
    waiter.set_result(None)
