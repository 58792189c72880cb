"""The receiver's small decisions: one line a minute for refusals, many events per journal
transaction, and a journal that cannot be written said once each way (a real SQLite file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from feishu_followers.journal_writer import JournalWriter
from feishu_followers.receiver import ThrottledLine
from feishu_tasks.journal import Journal, JournalError, RecordedEvent, TaskChange

GUID = "0d38e26e-190a-49e9-93a2-35067763ed1f"


def test_refusals_make_at_most_one_line_a_minute_with_the_counts() -> None:
    said: list[str] = []
    now = [0.0]
    line = ThrottledLine(said.append, every=60.0, clock=lambda: now[0])
    for second in range(0, 150):
        now[0] = float(second)
        line.note("wrong signature" if second % 2 else "wrong or missing verification token")
    assert len(said) == 3  # at 0 s, 60 s, 120 s
    assert "1 × wrong or missing verification token" in said[0]
    assert "30 × wrong or missing verification token" in said[1] and "30 × wrong signature" in said[1]


def event(n: int) -> RecordedEvent:
    return RecordedEvent(f"ev{n}", (TaskChange(GUID, "v2", ("task_followers_update",), n),))


def test_events_that_arrive_together_share_one_transaction(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[bool], int]:
        with Journal(tmp_path / "j.sqlite") as journal:
            writer = JournalWriter(journal, lambda line: None)
            running = asyncio.create_task(writer.run())
            fresh = await asyncio.gather(*(writer.record(event(n % 400)) for n in range(500)))
            running.cancel()
            writer.close()
            return list(fresh), writer.transactions

    fresh, transactions = asyncio.run(scenario())
    assert fresh.count(True) == 400 and fresh.count(False) == 100  # the replays, once
    assert transactions <= 3  # not 500 disk syncs


class FullJournal(Journal):
    """A real journal whose disk is full until told otherwise."""

    full = True

    def record(self, events, received_at_ms=None):  # type: ignore[no-untyped-def]
        if self.full:
            raise JournalError(f"cannot write the change journal {self.path}: database or disk is full")
        return super().record(events, received_at_ms)


def test_a_journal_that_cannot_be_written_fails_its_events_and_is_said_once_each_way(tmp_path: Path) -> None:
    said: list[str] = []

    async def scenario() -> None:
        with FullJournal(tmp_path / "j.sqlite") as journal:
            writer = JournalWriter(journal, said.append)
            running = asyncio.create_task(writer.run())
            for n in range(3):
                with pytest.raises(JournalError):
                    await writer.record(event(n))
            journal.full = False
            assert await writer.record(event(0)) is True
            assert await writer.record(event(1)) is True
            running.cancel()
            writer.close()

    asyncio.run(scenario())
    assert len(said) == 2
    assert "database or disk is full; answering 503" in said[0] and "can be written again" in said[1]
