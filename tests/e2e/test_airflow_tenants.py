"""The store-app Airflow recipe (``pipelines/feishu_airflow_tenants_dag.py``): one mapped task per
tenant the journal shows installed, each its own dlt pipeline; run twice against the store simulator.

Skipped without Airflow, as ``test_airflow.py`` is (``FEISHU_AIRFLOW_PYTHON`` names a Python that has it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb

from feishu_simulator import World
from feishu_simulator.store import StoreSimulator
from feishu_tasks.journal import AppTicket, Journal, RecordedEvent, TenantState

from .conftest import DATASET, REPO, truth
from .test_airflow import AIRFLOW_PYTHON, pytestmark  # noqa: F401 (the same skip)

RECIPE = REPO / "pipelines" / "feishu_airflow_tenants_dag.py"
DAG_ID = "feishu_followers_tenants"
APP_ID, APP_SECRET = "cli_store_airflow", "store-airflow-secret"
TENANTS = ("tenant_a", "tenant_b", "tenant_c")


def airflow(mode: str, sim: StoreSimulator, tmp_path: Path, journal: Path) -> dict[str, Any]:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    shutil.copy(RECIPE, dags / RECIPE.name)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "TMPDIR": str(tmp_path / "tmp"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE": "store",
            "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
            "SOURCES__FEISHU_TASKS__DISCOVER": "true",
            "SOURCES__FEISHU_TASKS__BACKOFF_BASE_SECONDS": "0.01",
            "SOURCES__FEISHU_TASKS__TICKET_JOURNAL": str(journal),
            "PIPELINES__FEISHU_FOLLOWERS__PIPELINES_DIR": str(tmp_path / "pipelines"),
            "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "feishu.duckdb"),
        }
    )
    assert AIRFLOW_PYTHON
    done = subprocess.run(
        [AIRFLOW_PYTHON, str(Path(__file__).with_name("airflow_harness.py")), mode, str(dags), DAG_ID],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["import_errors"] == {}
    return report


def followers_of(database: Path, tenant: str) -> dict[str, set[str]]:
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            f"select task_id, follower_id from {DATASET}.task_followers where tenant_key = ?", [tenant]
        ).fetchall()
    current: dict[str, set[str]] = {}
    for task_id, follower_id in rows:
        current.setdefault(task_id, set()).add(follower_id)
    return current


def test_one_mapped_task_per_installed_tenant_twice(tmp_path: Path) -> None:
    worlds = {key: World.generate(tasks=8, seed=70 + i) for i, key in enumerate(TENANTS)}
    journal = tmp_path / "journal.sqlite"
    with StoreSimulator(worlds, app_id=APP_ID, app_secret=APP_SECRET) as sim:
        ticket = sim.push_ticket()
        with Journal(journal) as opened:  # what listen records from the app's events
            facts = (AppTicket(APP_ID, ticket), *(TenantState(key, "installed") for key in TENANTS))
            opened.record([RecordedEvent("ev-installs", facts)])
        parsed = airflow("parse", sim, tmp_path, journal)
        assert parsed["downstream"] == {"tenants": ["load_tenant"], "load_tenant": []}
        assert all(tenant.stats.as_dict()["token_requests"] == 0 for tenant in sim.store.tenants.values())
        assert airflow("run", sim, tmp_path, journal)["state"] == "success"
        added = worlds["tenant_b"].add_task(followers=3)
        assert airflow("run", sim, tmp_path, journal)["state"] == "success"
    database = tmp_path / "feishu.duckdb"
    for key, world in worlds.items():
        assert followers_of(database, key) == truth(world, world.task_ids()), key
    assert len(followers_of(database, "tenant_b")[added]) == 3
    with duckdb.connect(str(database), read_only=True) as con:
        applied = con.execute(f"select count(*) from {DATASET}._feishu_history_loads").fetchone()
        loads = con.execute(f"select count(*) from {DATASET}._dlt_loads where status = 0").fetchone()
    assert applied == loads and loads is not None and loads[0] >= 4
