"""The Airflow recipe (``pipelines/feishu_airflow_dag.py``), where Airflow is installed.

Airflow is not in the test extra (it pins much of its world); these tests run with the Python
that pytest runs on if it has Airflow, or with the one named by ``FEISHU_AIRFLOW_PYTHON`` (e.g.
a throwaway venv with ``pip install apache-airflow -e .``), and are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from feishu_simulator import Simulator, World

from .conftest import APP_ID, APP_SECRET, DATASET, REPO, truth

AIRFLOW_PYTHON = os.environ.get("FEISHU_AIRFLOW_PYTHON") or (
    sys.executable if importlib.util.find_spec("airflow") else None
)
pytestmark = pytest.mark.skipif(
    AIRFLOW_PYTHON is None,
    reason="apache-airflow is not installed (optional extra `airflow`; or set FEISHU_AIRFLOW_PYTHON)",
)

RECIPE = REPO / "pipelines" / "feishu_airflow_dag.py"
LOAD, AFTER_LOAD = "feishu_followers.feishu_followers", "feishu_followers.after_load"


def airflow(mode: str, sim: Simulator, tmp_path: Path) -> dict[str, Any]:
    """Copy the DAG into a dags folder and let Airflow parse (or run) it; returns the harness's report."""
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(RECIPE, dags / RECIPE.name)
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "TMPDIR": str(tmp_path / "tmp"),  # PipelineTasksGroup's data folders
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
            "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
            "SOURCES__FEISHU_TASKS__DISCOVER": "true",
            "SOURCES__FEISHU_TASKS__BACKOFF_BASE_SECONDS": "0.01",
            "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "feishu.duckdb"),
        }
    )
    assert AIRFLOW_PYTHON
    done = subprocess.run(
        [AIRFLOW_PYTHON, str(Path(__file__).with_name("airflow_harness.py")), mode, str(dags)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["import_errors"] == {}
    return report


def test_dag_parses_into_its_tasks_without_calling_the_api(sim: Simulator, tmp_path: Path) -> None:
    report = airflow("parse", sim, tmp_path)
    assert report["downstream"] == {LOAD: [AFTER_LOAD], AFTER_LOAD: []}
    assert sim.stats.as_dict()["by_endpoint"] == {}  # not even a token


def test_dag_run_loads_the_truth_and_derives_the_history(
    sim: Simulator, world: World, tmp_path: Path
) -> None:
    report = airflow("run", sim, tmp_path)
    assert report["state"] == "success"
    ids = world.task_ids()
    with duckdb.connect(str(tmp_path / "feishu.duckdb"), read_only=True) as con:
        rows = con.execute(f"select task_id, follower_id from {DATASET}.task_followers").fetchall()
        current: dict[str, set[str]] = {}
        for task_id, follower_id in rows:
            current.setdefault(task_id, set()).add(follower_id)
        assert current == truth(world, ids)
        assert con.execute(f"select count(*) from {DATASET}.tasks").fetchall() == [(len(ids),)]
        assert con.execute(f"select count(*) from {DATASET}._feishu_history_loads").fetchall() == [(1,)]
        open_follows = con.execute(
            f"select count(*) from {DATASET}.task_follower_history where valid_to is null"
        ).fetchall()
        assert open_follows == [(len(rows),)]
        assert con.execute(f"select count(*) from {DATASET}.followers_per_task").fetchall() == [(len(ids),)]
