"""Incremental discovery, the stale sweep under a request cap, dry runs and the run lock."""

from __future__ import annotations

from datetime import timedelta

from feishu_followers.lock import run_lock
from feishu_followers.run import make_pipeline
from feishu_simulator import World

from .conftest import DATASET, Loader, cli, on_every_destination, sim_env, truth


def list_requests(loader: Loader) -> int:
    return loader.sim.stats.as_dict()["by_endpoint"].get("list_tasks", 0)


def test_incremental_discover_lists_only_new_tasks(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    loader.run([], discover=True)
    assert loader.followers() == truth(world, ids)
    old_fetch = dict(loader.query(f"select task_id, fetched_at from {DATASET}.task_fetch_status"))
    new_task = world.add_task(followers=2)  # created now, long after the generated tasks
    world.touch(ids[0])  # updated now, created long ago: not in the incremental listing
    world.add_follower(ids[0])
    loader.sim.reset_stats()
    loader.run([], discover=True, discover_lookback_seconds=3600)
    fetched = dict(loader.query(f"select task_id, fetched_at from {DATASET}.task_fetch_status"))
    assert new_task in fetched
    assert fetched[ids[0]] == old_fetch[ids[0]]  # left to the stale sweep
    assert list_requests(loader) == 1
    assert loader.sim.stats.as_dict()["by_endpoint"].get("followers", 0) <= 2
    assert loader.followers()[new_task] == set(world.followers(new_task))

    loader.sim.reset_stats()
    options = loader.options([], discover=True)
    options.full_refresh = True
    from feishu_followers.run import run

    run(options)
    assert list_requests(loader) >= 1
    assert loader.followers() == truth(world, world.task_ids())


@on_every_destination
def test_stale_sweep_with_request_cap_reaches_full_coverage(loader: Loader, world: World) -> None:
    from feishu_followers.run import run

    ids = world.task_ids()
    loader.run(ids)
    first_round = dict(loader.query(f"select task_id, last_ok_at from {DATASET}.task_fetch_status"))
    total_pages = sum(max(1, -(-len(world.followers(t)) // 50)) for t in ids)
    for task_id in ids[::5]:
        world.add_follower(task_id)
    cap = 12
    runs = 0
    while runs < 20:
        loader.sim.reset_stats()
        options = loader.options([])
        options.stale_after, options.max_requests = timedelta(seconds=0), cap
        result = run(options)
        runs += 1
        assert loader.sim.stats.as_dict()["business_requests"] <= cap
        refreshed = dict(loader.query(f"select task_id, last_ok_at from {DATASET}.task_fetch_status"))
        if all(refreshed[t] > first_round[t] for t in ids):
            break
    assert runs <= -(-total_pages // (cap - 3)) + 1, f"full coverage took {runs} runs"
    assert loader.followers() == truth(world, ids)
    assert result.stale_after_run is not None


def test_dry_run_fetches_and_loads_nothing(loader: Loader, world: World) -> None:
    from feishu_followers.run import run

    ids = world.task_ids()
    loader.run(ids[:10])
    before = loader.query(f"select * from {DATASET}.task_fetch_status order by task_id")
    loader.sim.reset_stats()
    options = loader.options(ids[5:15], discover=True)
    options.dry_run, options.stale_after = True, timedelta(seconds=0)
    result = run(options)
    planned = dict(result.planned)
    assert set(planned) == set(ids)
    assert planned[ids[12]] == "given" and planned[ids[20]] == "discovered"
    assert loader.sim.stats.as_dict()["by_endpoint"].get("followers", 0) == 0
    assert loader.query(f"select * from {DATASET}.task_fetch_status order by task_id") == before
    big = next(t for t in ids[:10] if len(world.followers(t)) > 50)
    assert result.planned_requests[big] == -(-len(world.followers(big)) // 50)
    assert not make_pipeline(options, progress=False).has_pending_data


def test_dry_run_cli_output(loader: Loader, world: World, tmp_path) -> None:
    ids = world.task_ids()[:4]
    env = sim_env(loader.sim)
    args = [
        "run",
        "--dry-run",
        "--duckdb",
        str(tmp_path / "d.duckdb"),
        "--pipelines-dir",
        str(tmp_path / "p"),
    ]
    done = cli([*args, *sum((["--task-id", t] for t in ids), []), "--max-requests", "2"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "dry run: would fetch 4 tasks (given 4" in done.stdout
    assert "--max-requests 2" in done.stdout
    assert all(t in done.stdout for t in ids)


def test_second_concurrent_run_is_refused(loader: Loader, world: World, tmp_path) -> None:
    """Another run of the pipeline, or another pipeline on the same DuckDB file: exit 3, nothing touched."""
    options = loader.options(world.task_ids()[:3])
    env = sim_env(loader.sim)
    same_pipeline = ["--duckdb", str(loader.duckdb), "--pipelines-dir", str(loader.pipelines_dir)]
    same_file = ["--duckdb", str(loader.duckdb), "--pipelines-dir", str(tmp_path / "elsewhere")]
    for where, message in (
        (same_pipeline, "another run of pipeline 'feishu_followers' is in progress"),
        (same_file, f"another run is loading {loader.duckdb.resolve()}"),
    ):
        with run_lock(options.pipeline_name, str(loader.pipelines_dir), options.duckdb_path):
            # Refused at once, not after a wait: the lock is held until cli() returns, so a run that
            # waited for it would never end and cli()'s bound would fail the test (a stopwatch
            # would only time how slowly a busy machine starts Python).
            done = cli(["run", "--task-id", world.task_ids()[0], *where], tmp_path, env)
        assert done.returncode == 3, done.stderr
        assert done.stderr.strip().count("\n") == 0
        assert message in done.stderr
        assert loader.sim.stats.as_dict()["business_requests"] == 0
    assert not loader.duckdb.exists()  # nothing touched the destination
    assert not (tmp_path / "elsewhere" / "feishu_followers").exists()  # nor dlt's working folder
    done = cli(["run", "--task-id", world.task_ids()[0], *same_pipeline], tmp_path, env)
    assert done.returncode == 0, done.stderr  # the locks are released with their holder
