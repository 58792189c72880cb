"""The source as a dlt user meets it: a plain pipeline.run, resource selection, any destination."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import dlt
import duckdb
import pyarrow.parquet as pq

from feishu_simulator import Simulator, World
from feishu_tasks import feishu_tasks

from .conftest import APP_ID, APP_SECRET, DATASET, REPO, SOURCE_TABLES, cli, truth

CREDENTIALS = {"app_id": APP_ID, "app_secret": APP_SECRET}


def plain_pipeline(tmp_path: Path, destination: object = "duckdb") -> dlt.Pipeline:
    if destination == "duckdb":
        destination = dlt.destinations.duckdb(str(tmp_path / "plain.duckdb"))
    return dlt.pipeline(
        "plain_feishu", destination=destination, dataset_name=DATASET, pipelines_dir=str(tmp_path / "p")
    )


def followers_in(path: Path) -> dict[str, set[str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(f"select task_id, follower_id from {DATASET}.task_followers").fetchall()
    current: dict[str, set[str]] = {}
    for task_id, follower_id in rows:
        current.setdefault(task_id, set()).add(follower_id)
    return current


def test_plain_run_loads_everything_in_one_call_and_leaves_no_thread(
    sim: Simulator, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()
    pipeline = plain_pipeline(tmp_path)
    pipeline.run(
        feishu_tasks(task_ids=ids[:10], discover=True, base_url=sim.base_url, credentials=CREDENTIALS)
    )
    assert followers_in(tmp_path / "plain.duckdb") == truth(world, ids)
    with pipeline.sql_client() as client:
        assert client.execute_sql(f"select count(*) from {DATASET}.tasks") == [(len(ids),)]
        assert client.execute_sql(f"select count(*) from {DATASET}.task_fetch_status") == [(len(ids),)]
        assert client.execute_sql(
            f"select count(*) from {DATASET}.task_followers where _dlt_load_id is null"
        ) == [(0,)]
    assert not [t for t in threading.enumerate() if t.name == "feishu-fetch"]


def test_with_resources_loads_only_the_chosen_tables(sim: Simulator, world: World, tmp_path: Path) -> None:
    ids = world.task_ids()[:8]
    pipeline = plain_pipeline(tmp_path)
    source = feishu_tasks(task_ids=ids, base_url=sim.base_url, credentials=CREDENTIALS)
    assert set(source.resources) == {"fetch_followers", *SOURCE_TABLES}
    pipeline.run(source.with_resources("task_followers"))
    tables = {t for t in pipeline.default_schema.data_table_names()}
    assert tables == {"task_followers"}
    assert followers_in(tmp_path / "plain.duckdb") == truth(world, ids)


def test_no_side_effects_on_import_or_call(sim: Simulator, tmp_path: Path) -> None:
    """Importing and calling the source changes neither dlt's global config nor sys.modules."""
    probe = f"""
import os, sys
import dlt
before_env = dict(os.environ)
before = dlt.config.get("normalize.parquet_normalizer.add_dlt_load_id")
import feishu_tasks
source = feishu_tasks.feishu_tasks(
    task_ids=["0d38e26e-190a-49e9-93a2-35067763ed1f"], base_url="{sim.base_url}",
    credentials={{"app_id": "a", "app_secret": "b"}})
assert dlt.config.get("normalize.parquet_normalizer.add_dlt_load_id") == before, "global dlt config changed"
assert sys.modules.get("sniffio") is None or hasattr(sys.modules["sniffio"], "current_async_library")
assert dict(os.environ) == before_env, "environment changed"
print("clean")
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == "clean", done.stderr


def test_filesystem_destination_never_loads_tombstones(sim: Simulator, world: World, tmp_path: Path) -> None:
    ids = world.task_ids()
    empty = [t for t in ids if not world.followers(t)]
    assert empty, "the world should have tasks without followers"
    bucket = tmp_path / "bucket"
    pipeline = plain_pipeline(tmp_path, dlt.destinations.filesystem(bucket.as_uri()))
    for _ in range(2):
        pipeline.run(feishu_tasks(task_ids=ids, base_url=sim.base_url, credentials=CREDENTIALS))
    files = list((bucket / DATASET / "task_followers").glob("*.parquet"))
    assert files
    rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    assert rows and not [r for r in rows if r["_tombstone"] or r["follower_id"] == ""]
    assert {r["task_id"] for r in rows} == {t for t in ids if world.followers(t)}


def test_example_pipeline_in_a_project_with_its_own_sources_folder(
    sim: Simulator, world: World, tmp_path: Path
) -> None:
    """pip-installed, the example runs where ``sources/`` is the user's, and makes the CLI's tables."""
    project = tmp_path / "project"
    (project / "sources").mkdir(parents=True)
    (project / "sources" / "__init__.py").write_text("")
    (project / "sources" / "my_api.py").write_text("SOMETHING = 1\n")
    (project / "pipelines").mkdir()
    (project / "pipelines" / "__init__.py").write_text("")
    shutil.copy(REPO / "pipelines" / "feishu_tasks_pipeline.py", project / "feishu_tasks_pipeline.py")
    env = example_env(sim, tmp_path)  # nothing but the credentials (and the simulator's URL)
    done = cli([], project, env, command=[sys.executable, "feishu_tasks_pipeline.py"])
    assert done.returncode == 0, done.stderr
    args = ["run", "--all-tasklists", "--followers-api", "auto", "--duckdb", str(tmp_path / "cli.duckdb")]
    args += ["--pipelines-dir", str(tmp_path / "p")]
    by_cli = cli(args, tmp_path, env)
    assert by_cli.returncode == 0, by_cli.stderr

    def snapshot(path: Path) -> dict[str, object]:
        with duckdb.connect(str(path), read_only=True) as con:
            names = con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1",
                [DATASET],
            ).fetchall()
            return {
                "relations": [n for (n,) in names if not n.startswith("_dlt")],
                "followers": con.execute(
                    f"select task_id, follower_id from {DATASET}.task_followers order by all"
                ).fetchall(),
                "status": con.execute(
                    f"select task_id, status, follower_count from {DATASET}.task_fetch_status order by all"
                ).fetchall(),
                "open_history": con.execute(
                    f"select task_id, follower_id from {DATASET}.task_follower_history "
                    "where valid_to is null order by all"
                ).fetchall(),
                "distribution": con.execute(
                    f"select bucket, tasks from {DATASET}.follower_count_distribution order by bucket_order"
                ).fetchall(),
            }

    assert snapshot(project / "feishu_followers.duckdb") == snapshot(tmp_path / "cli.duckdb")
    with duckdb.connect(str(project / "feishu_followers.duckdb"), read_only=True) as con:
        (listed,) = con.execute(f"select count(*) from {DATASET}.tasklist_tasks").fetchone()
        (followers,) = con.execute(f"select count(*) from {DATASET}.task_followers").fetchone()
    assert listed and followers  # copied as-is, it loads every list the app can see


def example_env(sim: Simulator, tmp_path: Path) -> dict[str, str]:
    return {
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
        "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
        "DLT_DATA_DIR": str(tmp_path / "dlt_data"),
    }


def test_the_example_loads_into_the_folder_it_runs_from(sim: Simulator, world: World, tmp_path: Path) -> None:
    """dlt remembers where a pipeline first ran; the example's file is where the README says."""
    env = example_env(sim, tmp_path)
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        shutil.copy(REPO / "pipelines" / "feishu_tasks_pipeline.py", tmp_path / folder)
        done = cli([], tmp_path / folder, env, command=[sys.executable, "feishu_tasks_pipeline.py"])
        assert done.returncode == 0, done.stderr
        with duckdb.connect(str(tmp_path / folder / "feishu_followers.duckdb"), read_only=True) as con:
            (loads,) = con.execute(f"select count(*) from {DATASET}._dlt_loads").fetchone()
        assert loads == 1, folder  # each folder's file holds its own run, not the other's


def test_the_stale_sweep_in_a_plain_pipeline(sim: Simulator, world: World, tmp_path: Path) -> None:
    """Without the CLI (a Dagster asset, say): the known tasks are fetched again once stale."""
    ids = world.task_ids()[:12]
    pipeline = plain_pipeline(tmp_path)
    pipeline.run(feishu_tasks(task_ids=ids, base_url=sim.base_url, credentials=CREDENTIALS))
    changed = next(t for t in ids if world.followers(t))
    world.add_follower(changed)
    sim.reset_stats()
    pipeline.run(feishu_tasks(stale_after_seconds=0, base_url=sim.base_url, credentials=CREDENTIALS))
    assert sim.stats.as_dict()["by_endpoint"]["followers"] >= len(ids)
    assert followers_in(tmp_path / "plain.duckdb") == truth(world, ids)
    sim.reset_stats()
    pipeline.run(feishu_tasks(stale_after_seconds=3600, base_url=sim.base_url, credentials=CREDENTIALS))
    assert sim.stats.as_dict()["by_endpoint"].get("followers", 0) == 0  # nothing is an hour old
