"""The thread bridge: an async producer in its own thread, a plain bounded iterator for dlt."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from feishu_tasks.bridge import HANDOFF_DEPTH, iterate_in_thread
from feishu_tasks.items import DiscoveredTasks, Emit


def test_items_arrive_in_order_and_the_thread_ends() -> None:
    async def produce(emit: Emit, closed: threading.Event) -> None:
        for n in range(50):
            await emit(DiscoveredTasks([{"id": str(n)}]))

    got = [item.tasks[0]["id"] for item in iterate_in_thread(produce, name="bridge-order")]  # type: ignore[union-attr]
    assert got == [str(n) for n in range(50)]
    assert not any(t.name == "bridge-order" for t in threading.enumerate())


def test_a_producer_error_is_raised_in_the_consumer() -> None:
    async def produce(emit: Emit, closed: threading.Event) -> None:
        await emit(DiscoveredTasks([]))
        raise ValueError("boom in the fetch thread")

    items = iterate_in_thread(produce)
    next(items)
    with pytest.raises(ValueError, match="boom in the fetch thread"):
        next(items)


def test_the_producer_runs_at_most_the_handoff_ahead_of_a_slow_consumer() -> None:
    produced: list[int] = []
    consumed = threading.Event()

    async def produce(emit: Emit, closed: threading.Event) -> None:
        for n in range(100):
            await emit(DiscoveredTasks([]))
            produced.append(n)

    items = iterate_in_thread(produce)
    next(items)
    # the producer fills the queue and blocks; wait until it has (bounded, generously: a busy machine)
    for _ in range(6000):
        if len(produced) >= HANDOFF_DEPTH:
            break
        consumed.wait(0.01)
    consumed.wait(0.2)  # time for a producer that did not block to run further
    assert HANDOFF_DEPTH <= len(produced) <= HANDOFF_DEPTH + 2
    items.close()


def test_a_consumer_that_stops_early_closes_the_producer_and_joins_its_thread() -> None:
    saw_closed: list[bool] = []

    async def produce(emit: Emit, closed: threading.Event) -> None:
        try:
            while not closed.is_set():
                await emit(DiscoveredTasks([]))
        finally:
            saw_closed.append(closed.is_set())

    items: Any = iterate_in_thread(produce, name="bridge-early")
    next(items)
    items.close()  # dlt stops iterating (a limit, an error downstream)
    assert saw_closed == [True]
    assert not any(t.name == "bridge-early" for t in threading.enumerate())


def test_the_producer_runs_on_its_own_event_loop() -> None:
    loops: list[Any] = []

    async def produce(emit: Emit, closed: threading.Event) -> None:
        loops.append(asyncio.get_running_loop())
        await emit(DiscoveredTasks([]))

    assert len(list(iterate_in_thread(produce))) == 1
    assert loops and loops[0].is_closed()
