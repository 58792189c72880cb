"""The thread bridge: an asyncio producer in its own thread, a plain iterator for dlt.

dlt extracts synchronously; our requests are async. The event loop runs in a thread of its
own so that requests stay in flight while dlt writes the previous batch, and a small bounded
queue between the two keeps memory flat however many tasks a run has. (dlt's own async and
parallel resources evaluate items one at a time through a thread pool, which is what this
exists to beat; see BENCHMARKS.md.)
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import suppress
from typing import Any

from .items import Emit, FetchItem

HANDOFF_DEPTH = 4  # items waiting for the consumer; each is a batch of up to ~20,000 rows


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def iterate_in_thread(
    produce: Callable[[Emit, threading.Event], Coroutine[Any, Any, None]], name: str = "feishu-fetch"
) -> Iterator[FetchItem]:
    """Run ``produce(emit, closed)`` on a new event loop in a thread; yield what it emits, in order.

    An exception in the producer is re-raised here, in the consumer's thread. When the
    consumer stops early, ``closed`` is set for the producer to wind down, and the thread is
    joined before this generator returns: no thread outlives it.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=HANDOFF_DEPTH)
    closed = threading.Event()

    async def emit(item: FetchItem) -> None:
        await asyncio.to_thread(handoff.put, item)

    def run_loop() -> None:
        try:
            asyncio.run(produce(emit, closed))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            handoff.put(_Failed(exc))
        else:
            handoff.put(_DONE)

    thread = threading.Thread(target=run_loop, name=name, daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        closed.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with suppress(queue.Empty):
                handoff.get(timeout=0.05)
        thread.join()
