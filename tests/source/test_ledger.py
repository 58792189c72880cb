"""The run's per-task state on disk (ledger.py): the same answers the sets and dicts gave."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from feishu_tasks.ledger import CHUNK, KnownTasks, TakenTasks


def test_taken_tasks_keep_the_first_of_each_id_in_order() -> None:
    taken = TakenTasks([("a", "given"), ("b", TakenTasks.INVALID), ("a", "given")])
    try:
        assert taken.count() == 2
        assert taken.take("c", "tasklist") and not taken.take("a", "stale") and not taken.take("c", "stale")
        assert [row[1:] for row in taken.after(0)] == [("a", "given"), ("b", "invalid"), ("c", "tasklist")]
        first = taken.after(0, 1)
        assert [row[1] for row in taken.after(first[0][0])] == ["b", "c"]
        assert taken.count("given") == 1 and "c" in taken and "d" not in taken
    finally:
        taken.close()


def test_taken_tasks_stream_more_ids_than_a_chunk() -> None:
    ids = [f"t{n:07d}" for n in reversed(range(CHUNK * 2 + 5))]
    taken = TakenTasks((task_id, "given") for task_id in ids + ids[:10])
    try:
        assert taken.count() == len(ids)
        assert taken.take("late", "stale")
        ids.append("late")
        read, seq = [], 0
        while rows := taken.after(seq, 1_000):
            read += [task_id for _, task_id, _ in rows]
            seq = rows[-1][0]
        assert read == ids
    finally:
        taken.close()


def test_known_tasks_give_back_the_instants_pages_and_sweep_order() -> None:
    known = KnownTasks()
    try:
        at = datetime(2026, 11, 24, 10, 30, 15, 123456, tzinfo=UTC)
        other_zone = datetime(2026, 11, 24, 18, 30, tzinfo=timezone(timedelta(hours=8)))
        naive = datetime(2026, 1, 2, 3, 4, 5)  # a destination without time zones: UTC
        known.add_last_ok([("a", at), ("b", other_zone), ("c", naive), ("d", None)])
        assert known.last_ok["a"] == at and known.last_ok["a"].tzinfo is not None
        assert known.last_ok["b"] == other_zone
        assert known.last_ok["c"] == naive.replace(tzinfo=UTC)
        assert known.last_ok.get("d") is None and "d" not in known.last_ok
        assert sorted(known.last_ok) == ["a", "b", "c"] and len(known.last_ok) == 3
        known.add_pages([("a", 3)])
        assert known.pages.get("a", 1) == 3 and known.pages.get("b", 1) == 1
        known.add_sweep(["z", "a", "m"])
        assert list(known.sweep) == ["z", "a", "m"] and len(known.sweep) == 3 and "m" in known.sweep
        assert not KnownTasks().sweep  # none asked for
    finally:
        known.close()


PROBE = """
import os, sys
from feishu_tasks.ledger import TakenTasks
taken = TakenTasks((f"{n:036d}", "given") for n in range(300_000))  # ~20 MB: past the page cache
links = []
for fd in os.listdir("/proc/self/fd"):
    try:
        links.append(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:  # the descriptor listdir itself used
        pass
print(taken.count(), [link for link in links if link.startswith(sys.argv[1])])
"""


def test_the_state_is_on_disk_in_tmpdir_and_no_file_outlives_the_run(tmp_path: Path) -> None:
    """A private temporary database: its file is in SQLite's temporary folder and unlinked at once,
    so a run killed with SIGKILL leaves nothing behind, and memory holds only the page cache."""
    env = dict(os.environ, SQLITE_TMPDIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, env=env, check=True
    )
    count, links = done.stdout.split(" ", 1)
    assert count == "300000"
    assert "(deleted)" in links, links  # an open file in TMPDIR, already unlinked
    assert not list(tmp_path.iterdir())
