"""The Dagster recipe (``pipelines/feishu_dagster.py``) materialized in-process against the simulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

from feishu_simulator import Simulator, World

from .conftest import APP_ID, APP_SECRET, DATASET, REPO, SOURCE_TABLES, truth

dagster = pytest.importorskip("dagster", reason="the dagster extra is not installed")
dagster_dlt = pytest.importorskip("dagster_dlt", reason="the dagster extra is not installed")

# dagster's own pydantic compatibility layer, on every definition it builds
pytestmark = pytest.mark.filterwarnings(
    "ignore:The `__fields__` attribute is deprecated:DeprecationWarning:dagster_shared"
)

RECIPE = REPO / "pipelines" / "feishu_dagster.py"
TABLES = SOURCE_TABLES


@pytest.fixture
def config(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Everything through env vars, as a deployment sets it; returns the DuckDB file."""
    database = tmp_path / "feishu.duckdb"
    env = {
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
        "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
        "SOURCES__FEISHU_TASKS__DISCOVER": "true",
        "SOURCES__FEISHU_TASKS__BACKOFF_BASE_SECONDS": "0.01",
        "DESTINATION__DUCKDB__CREDENTIALS": str(database),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return database


def load_recipe(pipelines_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import the recipe as Dagster would in a new container: a fresh module, an empty pipelines dir."""
    monkeypatch.setenv("PIPELINES__FEISHU_FOLLOWERS__PIPELINES_DIR", str(pipelines_dir))
    spec = importlib.util.spec_from_file_location(f"feishu_dagster_{pipelines_dir.name}", RECIPE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def materialize(recipe: ModuleType) -> dict[str, Any]:
    """Materialize every asset of the recipe's Definitions; returns their materialization metadata."""
    defs = recipe.defs
    result = dagster.materialize(
        [recipe.feishu_tasks_assets], resources={"dlt": dagster_dlt.DagsterDltResource()}
    )
    assert result.success
    assert defs.resolve_job_def("feishu_followers_job") is not None
    return {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def query(database: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql).fetchall()


def followers(database: Path) -> dict[str, set[str]]:
    current: dict[str, set[str]] = {}
    for task_id, follower_id in query(database, f"select task_id, follower_id from {DATASET}.task_followers"):
        current.setdefault(task_id, set()).add(follower_id)
    return current


def open_follows(database: Path, where: str = "true") -> int:
    """Open intervals of the follow history (``after_load`` made them)."""
    sql = f"select count(*) from {DATASET}.task_follower_history where valid_to is null and {where}"
    return query(database, sql)[0][0]


def test_recipe_loads_without_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The webserver and the daemon load the file without Feishu credentials: one asset per table."""
    for secret in ("APP_ID", "APP_SECRET", "USER_ACCESS_TOKEN"):
        monkeypatch.delenv(f"SOURCES__FEISHU_TASKS__CREDENTIALS__{secret}", raising=False)
    recipe = load_recipe(tmp_path / "pipelines", monkeypatch)
    keys = {key.to_user_string() for key in recipe.feishu_tasks_assets.keys}
    assert keys == {f"dlt_feishu_tasks_{table}" for table in TABLES}
    assert [s.cron_schedule for s in recipe.defs.schedules] == [recipe.SCHEDULE]


def test_materialize_loads_the_truth_then_lists_incrementally(
    sim: Simulator, world: World, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = config
    ids = world.task_ids()
    listed_from = spy_on_listing(world, monkeypatch)

    first = materialize(load_recipe(tmp_path / "pipelines-1", monkeypatch))
    assert set(first) == {f"dlt_feishu_tasks_{table}" for table in TABLES}
    assert listed_from == [None]  # no cursor yet: everything is listed
    assert followers(database) == truth(world, ids)
    assert query(database, f"select count(*) from {DATASET}.tasks") == [(len(ids),)]
    statuses = dict(query(database, f"select task_id, status from {DATASET}.task_fetch_status"))
    assert statuses == dict.fromkeys(ids, "ok")
    assert open_follows(database) == sum(len(f) for f in truth(world, ids).values())
    per_task = dict(query(database, f"select task_id, followers from {DATASET}.followers_per_task"))
    assert {t: n for t, n in per_task.items() if n} == {t: len(f) for t, f in truth(world, ids).items()}

    # A new container: an empty pipelines dir, the cursor only in the destination's dlt state.
    old_tasks_load = dict(query(database, f"select id, _dlt_load_id from {DATASET}.tasks"))
    new_task = world.add_task(followers=3)
    second = load_recipe(tmp_path / "pipelines-2", monkeypatch)
    assert second.pipeline.pipelines_dir == str(tmp_path / "pipelines-2")
    materialize(second)
    cursor = max(int(world.task(t)["update_time"]) for t in ids)
    assert listed_from[1:] == [cursor - 86_400]  # the default lookback before the newest update
    tasks_load = dict(query(database, f"select id, _dlt_load_id from {DATASET}.tasks"))
    assert {t: tasks_load[t] for t in ids} == old_tasks_load  # not listed again
    assert new_task in tasks_load and tasks_load[new_task] not in old_tasks_load.values()
    assert followers(database)[new_task] == set(world.followers(new_task))
    assert open_follows(database, f"task_id = '{new_task}'") == 3
    assert query(database, f"select count(*) from {DATASET}._feishu_history_loads") == [(2,)]


def spy_on_listing(world: World, monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """Record the ``start_create_time`` the simulator's list endpoint receives (the real listing runs)."""
    starts: list[int | None] = []
    real = world.list_tasks

    def list_tasks(**kwargs: Any) -> Any:
        if kwargs.get("after") is None:  # the first page of a listing
            starts.append(kwargs.get("start"))
        return real(**kwargs)

    monkeypatch.setattr(world, "list_tasks", list_tasks)
    return starts


def test_the_changes_sensor_starts_a_run_when_the_journal_has_new_changes(
    sim: Simulator, world: World, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sensor reads the change journal; the run it starts reads exactly the marked tasks."""
    from feishu_tasks.journal import Journal, RecordedEvent, TaskChange

    database, journal = config, tmp_path / "journal.sqlite"
    monkeypatch.setenv("SOURCES__FEISHU_TASKS__DISCOVER", "false")
    monkeypatch.setenv("SOURCES__FEISHU_TASKS__JOURNAL", str(journal))
    recipe = load_recipe(tmp_path / "pipelines", monkeypatch)
    sensor = recipe.feishu_changes
    assert isinstance(sensor(dagster.build_sensor_context()), dagster.SkipReason)  # no journal yet

    task = world.task_ids()[4]
    added = world.add_follower(task)
    with Journal(journal) as j:
        j.record([RecordedEvent("ev-1", (TaskChange(task, "v1", ("task_followers_update",)),))])
    first = sensor(dagster.build_sensor_context())
    assert [r.run_key for r in first.run_requests] == ["journal-1"] and first.cursor == "1"
    materialize(recipe)
    assert added in followers(database)[task]
    assert set(followers(database)) == {task}  # the run read the marked task, and only that one
    assert isinstance(sensor(dagster.build_sensor_context(cursor=first.cursor)), dagster.SkipReason)
