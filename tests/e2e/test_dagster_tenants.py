"""The store-app Dagster recipe (``pipelines/feishu_dagster_tenants.py``): a dynamic partition per
tenant from the recorded installs, each materialized as its own dlt pipeline, twice, in-process
against the store simulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

from feishu_simulator import World
from feishu_simulator.store import StoreSimulator
from feishu_tasks.journal import AppTicket, Journal, RecordedEvent, TenantState

from .conftest import DATASET, REPO, truth

dagster = pytest.importorskip("dagster", reason="the dagster extra is not installed")
dagster_dlt = pytest.importorskip("dagster_dlt", reason="the dagster extra is not installed")

pytestmark = pytest.mark.filterwarnings(
    "ignore:The `__fields__` attribute is deprecated:DeprecationWarning:dagster_shared"
)

RECIPE = REPO / "pipelines" / "feishu_dagster_tenants.py"
APP_ID, APP_SECRET = "cli_store_dagster", "store-dagster-secret"
TENANTS = ("tenant_a", "tenant_b", "tenant_c")


def load_recipe(pipelines_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("PIPELINES__FEISHU_FOLLOWERS__PIPELINES_DIR", str(pipelines_dir))
    spec = importlib.util.spec_from_file_location(f"feishu_dagster_tenants_{pipelines_dir.name}", RECIPE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def followers_of(database: Path, tenant: str) -> dict[str, set[str]]:
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            f"select task_id, follower_id from {DATASET}.task_followers where tenant_key = ?", [tenant]
        ).fetchall()
    current: dict[str, set[str]] = {}
    for task_id, follower_id in rows:
        current.setdefault(task_id, set()).add(follower_id)
    return current


def test_a_partition_per_installed_tenant_each_loaded_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worlds = {key: World.generate(tasks=8, seed=60 + i) for i, key in enumerate(TENANTS)}
    journal, database = tmp_path / "journal.sqlite", tmp_path / "feishu.duckdb"
    with StoreSimulator(worlds, app_id=APP_ID, app_secret=APP_SECRET) as sim:
        ticket = sim.push_ticket()
        with Journal(journal) as opened:  # what listen records from the app's events
            facts = (AppTicket(APP_ID, ticket), *(TenantState(key, "installed") for key in TENANTS))
            opened.record([RecordedEvent("ev-installs", facts)])
        for key, value in {
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE": "store",
            "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
            "SOURCES__FEISHU_TASKS__DISCOVER": "true",
            "SOURCES__FEISHU_TASKS__BACKOFF_BASE_SECONDS": "0.01",
            "SOURCES__FEISHU_TASKS__TICKET_JOURNAL": str(journal),
            "DESTINATION__DUCKDB__CREDENTIALS": str(database),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }.items():
            monkeypatch.setenv(key, value)
        instance = dagster.DagsterInstance.ephemeral()
        for attempt in (1, 2):  # twice: a new container each time (an empty pipelines folder)
            recipe = load_recipe(tmp_path / f"pipelines-{attempt}", monkeypatch)
            found = recipe.feishu_tenants(dagster.build_sensor_context(instance=instance))
            if attempt == 1:
                assert sorted(r.partition_key for r in found.run_requests) == list(TENANTS)
                (adding,) = found.dynamic_partitions_requests
                instance.add_dynamic_partitions(recipe.tenants.name, list(adding.partition_keys))
            else:
                assert isinstance(found, dagster.SkipReason)  # no new tenant
            keys = instance.get_dynamic_partitions(recipe.tenants.name)
            assert sorted(keys) == list(TENANTS)
            for key in keys:
                result = dagster.materialize(
                    [recipe.feishu_tenant_assets],
                    partition_key=key,
                    instance=instance,
                    resources={"dlt": dagster_dlt.DagsterDltResource()},
                )
                assert result.success
            if attempt == 1:  # a new task the second round must list, in one tenant only
                added = worlds["tenant_b"].add_task(followers=3)
    for key, world in worlds.items():
        assert followers_of(database, key) == truth(world, world.task_ids()), key
    assert len(followers_of(database, "tenant_b")[added]) == 3
    assert added not in followers_of(database, "tenant_a")
    with duckdb.connect(str(database), read_only=True) as con:
        applied = con.execute(f"select count(*) from {DATASET}._feishu_history_loads").fetchone()
        loads = con.execute(f"select count(*) from {DATASET}._dlt_loads where status = 0").fetchone()
        open_follows = con.execute(
            f"select tenant_key, count(*) from {DATASET}.task_follower_history "
            "where valid_to is null group by 1"
        ).fetchall()
    assert (
        applied == loads and loads[0] >= 4
    )  # every tenant's loads, each applied once (empty ones make none)
    assert dict(open_follows) == {
        k: sum(len(f) for f in truth(w, w.task_ids()).values()) for k, w in worlds.items()
    }
    for key in TENANTS:
        assert (tmp_path / "pipelines-2" / f"feishu_followers__{key}").is_dir()
