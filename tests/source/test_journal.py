"""The change journal on a real SQLite file: once per event, ordered positions, pruning, two processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from feishu_tasks.journal import (
    AppTicket,
    Journal,
    RecordedEvent,
    TaskChange,
    TenantState,
    default_journal_path,
)

A, B = "0d38e26e-190a-49e9-93a2-35067763ed1f", "1d38e26e-190a-49e9-93a2-35067763ed1f"


def change(task_id: str = A, **kw: object) -> TaskChange:
    return TaskChange(task_id, "v2", ("task_followers_update",), 1_700_000_000_000, **kw)  # type: ignore[arg-type]


def test_an_event_is_recorded_once_however_often_it_is_replayed(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.record([RecordedEvent("ev1", (change(),))]) == [True]
        assert journal.record([RecordedEvent("ev1", (change(),)), RecordedEvent("ev2", (change(B),))]) == [
            False,
            True,
        ]
        assert [(c.position, c.change.task_id) for c in journal.changes_after(0)] == [(1, A), (2, B)]
        assert journal.changes_after(1)[0].change == change(B)


def test_an_acknowledged_position_prunes_changes_but_remembers_their_event_ids(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record([RecordedEvent(f"ev{n}", (change(),)) for n in range(5)])
        assert journal.acknowledge("feishu_followers", 3) == 3
        assert [c.position for c in journal.changes_after(0)] == [4, 5]
        assert journal.record([RecordedEvent("ev1", (change(),))]) == [False]  # a late replay: still once
        assert journal.last_position() == 5
        journal.acknowledge("feishu_followers", 2)  # a position never moves back
        assert journal.pending(0) == 2


def test_pruning_waits_for_every_consumer(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.acknowledge("dagster", 0)  # a consumer takes part in pruning from its first word
        journal.record([RecordedEvent(f"ev{n}", (change(),)) for n in range(4)])
        journal.acknowledge("cron", 4)
        journal.acknowledge("dagster", 1)
        assert [c.position for c in journal.changes_after(0)] == [2, 3, 4]


def test_events_without_facts_are_counted_not_recorded(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record(
            [
                RecordedEvent("x1", (), "im.message.receive_v1"),
                RecordedEvent("x2", (), "im.message.receive_v1"),
            ]
        )
        assert journal.counters() == {"ignored:im.message.receive_v1": 2}
        assert journal.changes_after(0) == []


def test_requeued_tasks_come_after_everything_recorded(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record([RecordedEvent("ev1", (change(),))])
        assert journal.requeue([change(B)], "retry") == 1
        assert [(c.position, c.change.task_id) for c in journal.changes_after(1)] == [(2, B)]


def test_store_app_facts_keep_the_newest_ticket_and_the_latest_tenant_status(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record([RecordedEvent("t1", (AppTicket("cli_a", "ticket-1", 1),))])
        journal.record([RecordedEvent("t2", (AppTicket("cli_a", "ticket-2", 2),))])
        ticket = journal.latest_ticket("cli_a")
        assert ticket is not None and ticket[0] == "ticket-2"
        journal.record([RecordedEvent("o1", (TenantState("tk1", "installed", 10),))])
        journal.record([RecordedEvent("s1", (TenantState("tk1", "stopped", 30),))])
        journal.record([RecordedEvent("s0", (TenantState("tk1", "active", 20),))])  # late and older: ignored
        assert journal.tenants() == {"tk1": "stopped"}


def test_the_file_is_private_and_found_beside_the_pipelines_working_folder(tmp_path: Path) -> None:
    path = default_journal_path(tmp_path / "pipelines", "feishu_followers")
    assert path == tmp_path / "pipelines" / ".feishu_followers.journal.sqlite"
    Journal(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


WRITER = """
import sys
from feishu_tasks.journal import Journal, RecordedEvent, TaskChange
journal = Journal(sys.argv[1])
for n in range(int(sys.argv[2])):
    journal.record([RecordedEvent(f"w{n}", (TaskChange(f"task-{n}", "v1"),))])
print("done", flush=True)
"""


def test_another_process_writes_while_this_one_reads(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), "300"], stdout=subprocess.PIPE, text=True
        )
        seen = 0
        while writer.poll() is None:
            seen = max(seen, len(journal.changes_after(0)))  # reading never blocks on the writer
        assert writer.returncode == 0
        assert len(journal.changes_after(0)) == 300 >= seen
