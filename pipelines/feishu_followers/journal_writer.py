"""Recording events in the change journal from the receiver's event loop, many at a time.

Every event is answered only after ``Journal.record`` returned (the transaction is on disk), and
one record (one disk sync) costs about the same for one event or a thousand. So the events that
arrive while a record is on its way wait for the next one, which takes them all: group commit.
The record runs in one worker thread, so the loop keeps reading requests meanwhile.

A journal that cannot be written (a full disk) fails the events of that record: the receiver
answers 503 and Feishu pushes them again; the state change is said once each way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from feishu_tasks.journal import Journal, JournalError, RecordedEvent

MAX_BATCH = 2000  # events per transaction: bounds one record's time and memory
HEARTBEAT_SECONDS = 5.0


class JournalWriter:
    """The one writer of the receiver's journal: ``record`` from any task, grouped per transaction."""

    def __init__(self, journal: Journal, say: Callable[[str], None], receiver: str = "listen") -> None:
        self.journal = journal
        self.receiver = receiver
        self._say = say
        self._queue: list[tuple[RecordedEvent, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="journal")
        self._failing: str | None = None  # why the journal cannot be written, while it cannot
        self.transactions = 0

    async def record(self, event: RecordedEvent) -> bool:
        """Recorded durably: True if new, False for a replay; JournalError when it cannot be."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._wake.set()
        return await future

    async def run(self) -> None:
        """Record what is queued, batch after batch, until cancelled (finish with ``drain``)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.drain()

    async def drain(self) -> None:
        """Record everything queued now."""
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            await self._record(batch)

    async def _record(self, batch: list[tuple[RecordedEvent, asyncio.Future[bool]]]) -> None:
        loop = asyncio.get_running_loop()
        events = [event for event, _ in batch]
        try:
            fresh = await loop.run_in_executor(self._thread, self.journal.record, events)
        except Exception as exc:  # a full disk (JournalError), or a bug: the batch fails, the writer goes on
            if isinstance(exc, JournalError):
                self._became_failing(str(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.transactions += 1
        self._became_writable()
        for (_, future), new in zip(batch, fresh, strict=True):
            if not future.done():
                future.set_result(new)

    def _became_failing(self, why: str) -> None:
        if self._failing is None:
            self._failing = why
            self._say(f"{why}; answering 503 so that Feishu pushes the events again, until it can be written")

    def _became_writable(self) -> None:
        if self._failing is not None:
            self._failing = None
            self._say("the change journal can be written again; recording events")

    @property
    def failing(self) -> bool:
        return self._failing is not None

    async def heartbeats(self) -> None:
        """``Journal.heartbeat`` every few seconds: a run can tell that a receiver is running."""
        loop = asyncio.get_running_loop()
        while True:
            # A journal that cannot be written (sqlite3's error, not wrapped here) is said by the records.
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._thread, self.journal.heartbeat, self.receiver)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
