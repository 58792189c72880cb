"""A persistent rate limit ends the run within its bound; a healthy run that meets 429s is never stopped.

Issue 21, item 3: every answer 429 used to stretch a run over days (each 429 pauses the endpoint,
31 tries a request), holding the lock so every scheduled start exited 3.
"""

from __future__ import annotations

import json
from pathlib import Path

from feishu_simulator import World

from .conftest import DATASET, Loader, answered, cli, truth, wait_until
from .test_unattended import assert_one_line, env_for, run_args, start_cli


def test_an_endpoint_that_answers_only_429_stops_the_run_and_keeps_what_it_fetched(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()
    loader.sim.faults.storm_reset_seconds = 1
    args = [*run_args(loader, ids), "--max-rps", "4", "--concurrency", "2", "--max-rate-limited", "3s"]
    process = start_cli(loader, args, tmp_path)
    wait_until(lambda: answered(loader.sim) >= 6, "the run never started fetching")
    loader.sim.faults.rate_limit_fraction = 1.0  # from now on, every answer is a rate limit
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    line = assert_one_line(stderr, "feishu-followers: error: ")
    assert "followers_v1 endpoint for 3 s was a rate limit (429)" in line and "--max-rate-limited" in line
    statuses = loader.statuses()
    assert 0 < len(statuses) < len(ids)  # what was fetched is loaded; the rest has no row: next run
    assert set(statuses.values()) == {"ok"}
    assert loader.followers() == truth(world, list(statuses))

    loader.sim.faults.rate_limit_fraction = 0.0
    done = cli(run_args(loader, ids), tmp_path, env_for(loader))
    assert done.returncode == 0, done.stderr
    assert loader.followers() == truth(world, ids)
    history = loader.query(f"select count(*) from {DATASET}.task_follower_history")
    assert history == [(sum(len(world.followers(task)) for task in ids),)]


def test_a_healthy_run_that_meets_429s_longer_than_the_bound_in_total_completes(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    """A third of the answers are 429s, each pausing the endpoint a second: the run spends most of
    its time rate limited, longer than the bound in total, but never the bound in a row."""
    ids = world.task_ids()
    loader.sim.faults.rate_limit_fraction = 0.3
    loader.sim.faults.storm_reset_seconds = 1
    bound = 8
    args = [*run_args(loader, ids), "--json", "--max-rps", "5", "--max-rate-limited", f"{bound}s"]
    done = cli(args, tmp_path, env_for(loader))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rate_limit_stop"] is None and summary["not_fetched"]["rate_limited"] == 0
    assert loader.followers() == truth(world, ids)
    assert set(loader.statuses().values()) == {"ok"}
    # what makes the test able to fail: a bound on the total time rate limited would have stopped it
    assert summary["rate_limited"] >= 8 and summary["fetch_seconds"] > bound, summary


def test_task_lists_that_cannot_be_listed_for_rate_limits_do_not_blame_the_scope(
    loader: Loader, tmp_path: Path
) -> None:
    """Every answer 429 from the start: the listing of the lists gives up; the line says why, not
    "check the scope"."""
    loader.sim.faults.rate_limit_fraction = 1.0
    loader.sim.faults.storm_reset_seconds = 0  # each try waits a moment, not a second
    done = cli(["run", "--all-tasklists", *loader.cli_args()], tmp_path, env_for(loader))
    assert done.returncode == 1, done.stderr
    line = assert_one_line(done.stderr, "feishu-followers: error: ")
    assert "cannot list the task lists" in line and "rate limited" in line, line
    assert "scope" not in line and "the next run tries again" in line
