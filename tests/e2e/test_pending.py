"""Pending loads: each belongs to its destination, loads from any path, and never blocks for ever.

Issue 21, items 1 and 2: a load left pending by a stopped run was completed into whatever
destination the next run named; a ``key=value`` folder in dlt's working path made DuckDB read a
partition column that no table has, and the package that failed that way failed every later run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from feishu_followers.run import make_pipeline, run
from feishu_followers.set_aside import GIVE_UP_AFTER_RUNS
from feishu_simulator import World
from feishu_tasks.errors import FatalError

from .conftest import DATASET, REPO, Loader, cli, on_every_destination, sim_env, truth
from .test_history import assert_open_intervals_match_current


def kill_during_load(loader: Loader, ids: list[str], cwd: Path) -> None:
    """A run of ``loader``'s destination, SIGKILLed in its merge: its package stays pending."""
    args = ["run", *loader.cli_args(), "--quiet", *sum((["--task-id", t] for t in ids), [])]
    env = {"PATH": "/usr/bin:/bin", "RUNTIME__DLTHUB_TELEMETRY": "false", **sim_env(loader.sim)}
    killed = subprocess.run(
        [sys.executable, str(REPO / "tests" / "e2e" / "crash_harness.py"), "load", *args],
        env={**env, **loader.cli_env()},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def followers_in(path: Path) -> int:
    if not path.exists():
        return 0
    with duckdb.connect(str(path), read_only=True) as con:
        schemas = con.execute("select schema_name from information_schema.schemata").fetchall()
        if (DATASET,) not in schemas:
            return 0
        return int(con.execute(f"select count(*) from {DATASET}.task_followers").fetchall()[0][0])


@on_every_destination
def test_a_pending_load_is_completed_at_its_own_destination_or_nowhere(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()
    kill_during_load(loader, ids, tmp_path)
    other = tmp_path / "lark.duckdb"
    elsewhere = loader.options(ids[:5])
    elsewhere.destination, elsewhere.duckdb_path = "duckdb", str(other)

    with pytest.raises(FatalError) as refused:  # before: "loaded 5 task(s)", with all 40 in lark.duckdb
        run(elsewhere)
    assert "not complete" in str(refused.value) and "--pipelines-dir" in str(refused.value)
    assert followers_in(other) == 0

    completed = loader.run(ids)  # its own destination completes it, exactly
    assert completed.completed_pending
    assert loader.followers() == truth(world, ids)
    assert_open_intervals_match_current(loader)

    run(elsewhere)  # and then the other destination goes on, with only its own tasks
    assert followers_in(other) == sum(len(world.followers(t)) for t in ids[:5])


def test_another_destination_does_not_inherit_the_working_folders_state(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    """The discover cursor is each destination's own. Before: the folder kept the state of the
    destination it loaded last (a higher version than the other's), so a run for the other
    listed only tasks created since that one's cursor and missed its own newer tasks."""
    lark = tmp_path / "lark.duckdb"
    other = loader.options(discover=True)
    other.duckdb_path = str(lark)
    run(other)  # lark's cursor: the newest task of the tenant (the world's anchor)
    loader.run(discover=True)
    world.add_task(followers=2)  # created now: moves this file's cursor to today
    loader.run(discover=True)
    since_lark = world.add_task(followers=3, create_time=world.anchor + 30 * 86_400)
    run(other)
    with duckdb.connect(str(lark), read_only=True) as con:
        loaded = con.execute(f"select count(*) from {DATASET}.task_followers where task_id = ?", [since_lark])
        assert loaded.fetchall() == [(3,)]


@on_every_destination
@pytest.mark.parametrize("folder", ["run=1/pipes", "o'brien/env=prod"])
def test_loading_does_not_depend_on_the_working_folders_path(
    loader: Loader, world: World, folder: str
) -> None:
    """Before: Binder Error: Table "task_followers" does not have a column with name "run", on
    every run after it (the package stayed pending); a quote broke the SQL."""
    loader.pipelines_dir = loader.pipelines_dir / folder
    ids = world.task_ids()
    loader.run(ids)
    changed = next(t for t in ids if world.followers(t))
    world.remove_follower(changed, world.followers(changed)[0])
    loader.run(ids)
    assert loader.followers() == truth(world, ids)
    assert_open_intervals_match_current(loader)


@on_every_destination
def test_a_package_that_cannot_load_is_set_aside_and_the_next_run_goes_on(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    """A load file that no retry can read (here: damaged on disk) stops its runs with one line,
    and is set aside: at once where dlt knows the failure is terminal (DuckDB here), after it
    failed the same way in GIVE_UP_AFTER_RUNS runs where dlt retries it (Postgres takes the damaged
    file for a syntax error). Before: every later run failed the same way, for ever."""
    ids = world.task_ids()
    loader.run(ids[:5])
    kill_during_load(loader, ids, tmp_path)
    pipeline = make_pipeline(loader.options(ids), progress=False)
    (pending,) = pipeline.list_normalized_load_packages()
    jobs = Path(pipeline.working_dir) / "load" / "normalized" / pending
    damaged = [path for path in jobs.rglob("task_followers.*") if path.is_file()]
    assert damaged
    for path in damaged:
        path.write_bytes(b"not a load file")

    lines = []
    for _ in range(GIVE_UP_AFTER_RUNS):
        with pytest.raises(FatalError) as failed:
            loader.run(ids)
        lines.append(str(failed.value))
        if "set aside" in lines[-1]:
            break
    assert "set aside" in lines[-1] and all("\n" not in line for line in lines), lines
    assert not make_pipeline(loader.options(ids), progress=False).has_pending_data

    loader.run(ids)  # goes on: fetches and loads everything again
    assert loader.followers() == truth(world, ids)
    assert_open_intervals_match_current(loader)


@on_every_destination
def test_a_dry_run_writes_nothing_and_leaves_a_pending_load_to_the_next_run(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    """Issue 21, 6: ``--dry-run`` completed the pending package first, at the destination."""
    ids = world.task_ids()
    loader.run(ids[:5])
    kill_during_load(loader, ids, tmp_path)

    def destination_state() -> tuple[list[tuple], list[tuple]]:
        loads = loader.query(f"select load_id, status from {DATASET}._dlt_loads order by load_id")
        statuses = loader.query(f"select task_id, fetched_at from {DATASET}.task_fetch_status order by 1")
        return loads, statuses

    before = destination_state()
    args = ["run", *loader.cli_args(), "--dry-run", *sum((["--task-id", t] for t in ids), [])]
    done = cli(args, tmp_path, {**sim_env(loader.sim), **loader.cli_env()})
    assert done.returncode == 0, done.stderr
    assert "a load of an earlier run is pending: the next run (not a dry run) loads it first" in done.stderr
    assert f"dry run: would fetch {len(ids)} tasks" in done.stdout
    assert destination_state() == before
    assert make_pipeline(loader.options(), progress=False).has_pending_data

    result = loader.run(ids)
    assert result.completed_pending
    assert loader.followers() == truth(world, ids)
    assert_open_intervals_match_current(loader)


def test_a_dry_run_creates_no_duckdb_file(loader: Loader, world: World, tmp_path: Path) -> None:
    args = ["run", *loader.cli_args(), "--dry-run", "--task-id", world.task_ids()[0]]
    done = cli(args, tmp_path, sim_env(loader.sim))
    assert done.returncode == 0, done.stderr
    assert "dry run: would fetch 1 tasks" in done.stdout
    assert not loader.duckdb.exists()
