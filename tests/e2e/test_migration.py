"""The CLI's pipeline was named ``feishu_tasks``; it is ``feishu_followers`` now, as in the recipes.

A run of the new version adopts the old working folder: its pending load package is loaded,
its discover cursor kept, and dlt restores that state from the destination under the new name.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import dlt

from feishu_followers.lock import run_lock
from feishu_followers.migration import FORMER_PIPELINE_NAME
from feishu_followers.options import PIPELINE_NAME
from feishu_simulator import World

from .conftest import DATASET, REPO, Loader, cli, sim_env, truth

CURSOR = ("sources", "feishu_tasks", "discover", "max_update_time")


def cursor_of(pipelines_dir: Path, name: str) -> object:
    state: object = dlt.attach(name, pipelines_dir=str(pipelines_dir)).state
    for key in CURSOR:
        state = state[key]  # type: ignore[index]
    return state


def old_version_env(loader: Loader) -> dict[str, str]:
    """The CLI as it was: the same code under the pipeline's former name."""
    return {**sim_env(loader.sim), "SOURCES__FEISHU_TASKS__PIPELINE_NAME": FORMER_PIPELINE_NAME}


def state_names(folder: Path) -> set[str]:
    """``pipeline_name`` in the state and in every load package's state snapshot."""
    return {json.loads(path.read_text())["pipeline_name"] for path in folder.rglob("state.json")}


def test_a_run_adopts_the_former_pipeline_with_its_pending_load_and_cursor(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()
    args = ["run", *loader.cli_args(), "--discover", "--quiet"]
    first = cli(args, tmp_path, old_version_env(loader))
    assert first.returncode == 0, first.stderr
    old_folder, new_folder = loader.pipelines_dir / FORMER_PIPELINE_NAME, loader.pipelines_dir / PIPELINE_NAME
    cursor = cursor_of(loader.pipelines_dir, FORMER_PIPELINE_NAME)
    assert cursor and not new_folder.exists()

    world.add_follower(ids[0])  # the killed run fetched this; only its pending package holds it
    harness = str(REPO / "tests" / "e2e" / "crash_harness.py")
    killed = subprocess.run(
        [sys.executable, harness, "load", *args, "--task-id", ids[0]],
        env={"PATH": "/usr/bin:/bin", "RUNTIME__DLTHUB_TELEMETRY": "false", **old_version_env(loader)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert dlt.attach(FORMER_PIPELINE_NAME, pipelines_dir=str(loader.pipelines_dir)).has_pending_data
    snapshots = list(old_folder.rglob("state.json"))
    assert len(snapshots) > 1 and state_names(old_folder) == {FORMER_PIPELINE_NAME}  # state + package's

    # An old-version run in progress (it holds the former name's lock): the new one keeps out.
    with run_lock(FORMER_PIPELINE_NAME, loader.pipelines_dir, None):
        refused = cli(["run", *loader.cli_args(), "--discover"], tmp_path, sim_env(loader.sim))
    assert refused.returncode == 3, refused.stderr
    assert f"another run of pipeline {FORMER_PIPELINE_NAME!r} is in progress" in refused.stderr
    assert old_folder.is_dir() and not new_folder.exists()

    done = cli(["run", *loader.cli_args(), "--discover"], tmp_path, sim_env(loader.sim))
    assert done.returncode == 0, done.stderr
    assert f"note: dlt's working folder {old_folder} is now {new_folder}" in done.stderr
    assert "first completed the load left pending by an interrupted run" in done.stdout
    assert not old_folder.exists()
    assert state_names(new_folder) == {PIPELINE_NAME}
    assert cursor_of(loader.pipelines_dir, PIPELINE_NAME) == cursor
    assert loader.followers() == truth(world, ids)

    again = cli(["run", *loader.cli_args(), "--discover"], tmp_path, sim_env(loader.sim))
    assert again.returncode == 0, again.stderr
    assert "working folder" not in again.stderr  # once

    # The state now lives at the destination under the new name: a new machine restores it.
    rows = loader.query(f"select distinct pipeline_name from {DATASET}._dlt_pipeline_state")
    assert (PIPELINE_NAME,) in rows
    elsewhere = tmp_path / "new-machine"
    pipeline = dlt.pipeline(
        PIPELINE_NAME,
        destination=dlt.destinations.duckdb(str(loader.duckdb)),
        dataset_name=DATASET,
        pipelines_dir=str(elsewhere),
    )
    pipeline.sync_destination()
    assert cursor_of(elsewhere, PIPELINE_NAME) == cursor


def test_a_pipeline_named_by_the_user_is_left_alone(loader: Loader, world: World, tmp_path: Path) -> None:
    """``pipeline_name = "feishu_tasks"`` in config: that name is kept, and nothing is moved."""
    done = cli(
        ["run", *loader.cli_args(), "--task-id", world.task_ids()[0]], tmp_path, old_version_env(loader)
    )
    assert done.returncode == 0, done.stderr
    assert (loader.pipelines_dir / FORMER_PIPELINE_NAME).is_dir()
    assert not (loader.pipelines_dir / PIPELINE_NAME).exists()
    assert "working folder" not in done.stderr
