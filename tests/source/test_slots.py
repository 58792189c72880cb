"""The cap on requests in flight that tenants loading side by side share (each on its own loop)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from feishu_tasks.slots import SharedSlots

pytestmark = pytest.mark.unit


def test_holders_on_several_loops_never_exceed_the_cap_and_all_get_through() -> None:
    slots = SharedSlots(3)
    held = 0
    most = 0
    lock = threading.Lock()
    done: list[int] = []

    async def request() -> None:
        nonlocal held, most
        async with slots:
            with lock:
                held += 1
                most = max(most, held)
            await asyncio.sleep(0)  # let others try while this one holds
            await asyncio.sleep(0.001)
            with lock:
                held -= 1

    def tenant() -> None:
        async def many() -> None:
            await asyncio.gather(*(request() for _ in range(40)))

        asyncio.run(many())
        done.append(1)

    threads = [threading.Thread(target=tenant) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(done) == 4
    assert most <= 3 and slots.peak <= 3
    assert slots.in_use == 0


def test_a_cancelled_waiter_takes_no_slot_away() -> None:
    async def scenario() -> int:
        slots = SharedSlots(1)
        await slots.acquire()
        waiter = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)  # it waits now
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        slots.release()
        await asyncio.wait_for(slots.acquire(), 5)  # the slot is free again
        slots.release()
        return slots.in_use

    assert asyncio.run(scenario()) == 0


def test_a_slot_freed_goes_to_the_first_waiter() -> None:
    async def scenario() -> list[str]:
        slots = SharedSlots(1)
        order: list[str] = []
        await slots.acquire()

        async def wait(name: str) -> None:
            async with slots:
                order.append(name)

        first = asyncio.ensure_future(wait("first"))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(wait("second"))
        await asyncio.sleep(0)
        slots.release()
        await asyncio.gather(first, second)
        return order

    assert asyncio.run(scenario()) == ["first", "second"]


def test_the_cap_is_at_least_one() -> None:
    with pytest.raises(ValueError):
        SharedSlots(0)
