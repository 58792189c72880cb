"""SIGKILL at any stage, then a plain re-run: exact tables, intact history."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from feishu_simulator import World

from .conftest import DATASET, REPO, Loader, on_every_destination, sim_env, truth
from .test_history import assert_open_intervals_match_current


@on_every_destination
@pytest.mark.parametrize("point", ["extract", "normalize", "staged", "load", "history"])
def test_killed_run_then_plain_rerun_is_exact(
    loader: Loader, world: World, tmp_path: Path, point: str
) -> None:
    ids = world.task_ids()
    loader.run(ids)
    changed = [t for t in ids if len(world.followers(t)) >= 2][:3]
    world.add_follower(changed[0])
    gone = world.followers(changed[1])[0]
    world.remove_follower(changed[1], gone)
    world.remove_all_followers(changed[2])

    args = ["run", *loader.cli_args(), "--quiet"]
    args += sum((["--task-id", t] for t in ids), [])
    env = {
        "PATH": "/usr/bin:/bin",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        **sim_env(loader.sim),
        **loader.cli_env(),
    }
    killed = subprocess.run(
        [sys.executable, str(REPO / "tests" / "e2e" / "crash_harness.py"), point, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    result = loader.run(ids)  # a plain re-run
    assert result.completed_pending == (point in ("normalize", "staged", "load"))
    assert loader.followers() == truth(world, ids)
    assert loader.query(
        f"select count(*) from (select distinct task_id, follower_id from {DATASET}.task_followers) d"
    ) == loader.query(f"select count(*) from {DATASET}.task_followers")
    assert loader.query(f"select count(*) from {DATASET}.task_fetch_status") == [(len(ids),)]
    assert_open_intervals_match_current(loader)
    closed = loader.query(
        f"select count(*) from {DATASET}.task_follower_history "
        f"where task_id = '{changed[1]}' and follower_id = '{gone}' and valid_to is not null"
    )
    assert closed == [(1,)]
    applied = loader.query(f"select count(*) from {DATASET}._feishu_history_loads")
    assert applied == loader.query(f"select count(*) from {DATASET}._dlt_loads where status = 0")


def test_a_second_sigterm_during_the_load_aborts_in_one_line_and_the_next_run_completes(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    """Issue 21, 6: it printed "stopped by SIGTERM: pipeline step load failed: 15"."""
    ids = world.task_ids()
    args = ["run", *loader.cli_args(), "--quiet", *sum((["--task-id", t] for t in ids), [])]
    env = {"PATH": "/usr/bin:/bin", "RUNTIME__DLTHUB_TELEMETRY": "false", **sim_env(loader.sim)}
    aborted = subprocess.run(
        [sys.executable, str(REPO / "tests" / "e2e" / "crash_harness.py"), "load-twice-sigterm", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert aborted.returncode == 128 + signal.SIGTERM, aborted.stderr
    assert aborted.stderr.strip().splitlines() == [
        "feishu-followers: aborted by SIGTERM; the next run completes what this one left"
    ]
    result = loader.run(ids)
    assert result.completed_pending
    assert loader.followers() == truth(world, ids)
    assert_open_intervals_match_current(loader)
