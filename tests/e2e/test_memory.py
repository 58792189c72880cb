"""Memory: what a load needs follows the size of a part, never the tenant's or the history's.

DuckDB keeps to its ``memory_limit`` by spilling to disk, except where an operator cannot: a
primary key's ART index, a correlated NOT EXISTS over a whole table. These tests give DuckDB
far less memory than the tables it holds, so any such step fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

from feishu_followers import run as run_module
from feishu_followers.run import run
from feishu_simulator import Simulator, World
from feishu_tasks.errors import FatalError
from feishu_tasks.tables import TASK_FIRST_SEEN, TASK_FOLLOWER_HISTORY
from feishu_tasks.task_ids import IdsInOrder

from .conftest import DATASET, Loader, cli, sim_env, truth
from .test_history import assert_open_intervals_match_current

OTHER_TASKS = 30_000  # tasks loaded before, not fetched by the run under test
FOLLOWERS_EACH = 10
SMALL_LIMIT = "40MB"


def seed_a_big_tenant(path: str) -> None:
    """300,000 follows of other tasks, current and in the history, as an earlier load left them,
    plus as many closed intervals (the history grows with time, not with the run)."""
    followers = f"{DATASET}.task_followers"
    history = f"{DATASET}.task_follower_history"
    with duckdb.connect(path) as con:
        con.execute(
            f"""insert into {followers}
                    (tenant_key, task_id, follower_id, user_id_type, _dlt_id, _tombstone, _dlt_load_id)
                select '', 'seed-' || md5((i // {FOLLOWERS_EACH})::varchar), 'ou_' || md5(i::varchar),
                       'open_id', md5(i::varchar)[:14], false, 'seed'
                from range({OTHER_TASKS * FOLLOWERS_EACH}) r(i)"""
        )
        con.execute(
            f"""insert into {history} (tenant_key, task_id, follower_id, user_id_type, valid_from, valid_to)
                select tenant_key, task_id, follower_id, user_id_type, now() - interval 2 day, null
                from {followers} where _dlt_load_id = 'seed'
                union all
                select tenant_key, task_id, 'ou_gone_' || follower_id, user_id_type, now() - interval 9 day,
                       now() - interval 8 day
                from {followers} where _dlt_load_id = 'seed'"""
        )


@pytest.fixture
def world() -> World:
    return World.generate(tasks=600, seed=11, followers_per_task=40)


def test_the_history_of_a_big_tenant_fits_a_small_memory_limit(loader: Loader, world: World) -> None:
    """24,000 new follows in parts of 6,000, beside 300,000 of other tasks and a history of 600,000
    rows, with DuckDB at 40MB. The bench shows the scale this stands for (bench/scale.py: before,
    1.1M follows failed at 256MB in the history's primary key and its NOT EXISTS, then every
    later run); here every step must keep to a limit far below the tables it reads."""
    ids = world.task_ids()
    loader.run(ids[:1])  # the tables exist
    seed_a_big_tenant(str(loader.duckdb))

    options = loader.options(ids, max_rps=0, max_rpm=0)  # unpaced: 600 requests
    options.duckdb_memory_limit = SMALL_LIMIT
    options.rows_per_load = 6_000
    result = run(options)

    assert len(result.load_ids) >= 4

    assert {t: f for t, f in loader.followers().items() if not t.startswith("seed-")} == truth(world, ids)
    assert_open_intervals_match_current(loader)
    changed = ids[5]
    gone = world.followers(changed)[0]
    world.remove_follower(changed, gone)
    options.task_ids = [changed]
    run(options)
    closed = loader.query(
        f"select count(*) from {DATASET}.task_follower_history "
        f"where task_id = '{changed}' and follower_id = '{gone}' and valid_to is not null"
    )
    assert closed == [(1,)]
    assert_open_intervals_match_current(loader)


def test_a_history_made_with_its_primary_key_is_rebuilt_without_it(loader: Loader, world: World) -> None:
    """Datasets made before keep working: the derived tables lose their DuckDB index, not a row."""
    ids = world.task_ids()[:20]
    loader.run(ids)
    for table in (TASK_FOLLOWER_HISTORY, TASK_FIRST_SEEN):
        name = f"{DATASET}.{table.name}"
        loader.execute(f"create table {name}_old as select * from {name}")
        loader.execute(f"drop table {name}")
        loader.execute(table.create_sql(name))  # as the earlier version made it: with its primary key
        loader.execute(f"insert into {name} select * from {name}_old")
        loader.execute(f"drop table {name}_old")
    before = loader.query(f"select * from {DATASET}.task_follower_history order by all")

    loader.run(ids)

    keys = loader.query(
        "select table_name from information_schema.table_constraints "
        f"where table_schema = '{DATASET}' and constraint_type = 'PRIMARY KEY'"
    )
    assert keys == []
    assert loader.query(f"select * from {DATASET}.task_follower_history order by all") == before
    ok_tasks = sum(status == "ok" for status in loader.statuses().values())
    assert loader.query(f"select count(*) from {DATASET}.task_first_seen") == [(ok_tasks,)]
    not_null = loader.query(
        "select column_name from information_schema.columns where table_name = 'task_follower_history' "
        f"and table_schema = '{DATASET}' and is_nullable = 'NO' order by column_name"
    )
    assert not_null == [("follower_id",), ("task_id",), ("tenant_key",), ("user_id_type",), ("valid_from",)]
    assert_open_intervals_match_current(loader)


def test_a_run_that_runs_out_of_memory_says_what_recovers_it_and_the_next_run_is_exact(
    loader: Loader, world: World
) -> None:
    """Whatever step hits the limit (here DuckDB gets 4MB), the run stops with one line naming
    the option, keeps what it fetched, and the next run completes it: exact, history consistent."""
    ids = world.task_ids()[:40]
    loader.run(ids[:10])
    starved = loader.options(ids, max_rps=0, max_rpm=0)
    starved.duckdb_memory_limit = "4MB"
    with pytest.raises(FatalError) as stopped:
        run(starved)
    assert "--memory-budget" in str(stopped.value) and "\n" not in str(stopped.value)

    loader.run(ids)
    assert loader.followers() == truth(world, ids)
    assert_open_intervals_match_current(loader)


# The CLI's entry point; then, on stdout's last line: Arrow's memory pool and what was imported.
AFTER_RUN = (
    "import sys; from feishu_followers.cli import main; code = main(); import pyarrow; "
    "print(pyarrow.default_memory_pool().backend_name, *sorted({'pandas', 'pyarrow'} & set(sys.modules))); "
    "sys.exit(code)"
)


def cli_run(loader: Loader, sim: Simulator, ids: list[str], tmp_path: Path, **env: str) -> list[str]:
    """A plain ``feishu-followers run`` of ``ids`` in its own process; what ``AFTER_RUN`` printed."""
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids))
    args = ["run", "--task-ids-file", str(ids_file), *loader.cli_args()]
    done = cli(args, tmp_path, sim_env(sim, **env), command=[sys.executable, "-c", AFTER_RUN])
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].split()


def test_a_plain_run_never_imports_pandas(
    loader: Loader, sim: Simulator, world: World, tmp_path: Path
) -> None:
    """pandas costs a run 37–53 MB of RSS and does nothing in it: pyarrow imports it on its first
    ``pa.array`` of Python values, so the rows are built without (``feishu_tasks.arrow_columns``).
    A plain CLI run, in its own process, loads the tables through Arrow and ends without pandas."""
    ids = world.task_ids()
    pool, *imported = cli_run(loader, sim, ids, tmp_path)

    assert loader.followers() == truth(world, ids)
    assert imported == ["pyarrow"]  # the rows went through Arrow, without pandas
    assert pool == "system"  # the CLI's choice (allocators.py), where the user made none


# After a --discover run in the same process: whether pandas was imported, then pandas on demand.
AFTER_DISCOVER = (
    "import sys; from feishu_followers.cli import main; code = main(); import pyarrow; "
    "imported = 'pandas' in sys.modules; frame = pyarrow.table({'a': [1, 2]}).to_pandas(); "
    "print(imported, type(frame).__name__, len(frame)); sys.exit(code)"
)


def test_a_discover_run_converts_task_objects_without_pandas_and_pandas_still_works_after(
    loader: Loader, sim: Simulator, world: World, tmp_path: Path
) -> None:
    """dlt writes the listed task objects with ``Table.from_pylist``, whose first call makes pyarrow
    import pandas to ask whether it is installed; the CLI's run answers that question "no"
    (``pandas_probe.py``), and whatever wants pandas afterwards still gets it."""
    args = ["run", "--discover", *loader.cli_args()]
    done = cli(args, tmp_path, sim_env(sim), command=[sys.executable, "-c", AFTER_DISCOVER])

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].split() == ["False", "DataFrame", "2"]
    ids = world.task_ids()
    assert loader.followers() == truth(world, ids)
    assert {task_id for (task_id,) in loader.query(f"select id from {DATASET}.tasks")} == set(ids)


def test_the_users_arrow_memory_pool_is_kept(
    loader: Loader, sim: Simulator, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()[:5]
    pool, *_ = cli_run(loader, sim, ids, tmp_path, ARROW_DEFAULT_MEMORY_POOL="jemalloc")

    assert pool == "jemalloc"
    assert loader.followers() == truth(world, ids)


def test_a_big_ids_file_is_read_as_the_fetch_takes_it_never_held(
    loader: Loader, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A million ids held as a list cost ~90 MB for the whole run; a file bigger than the few ids
    a run reads the destination for (``ONLY_AT_MOST``, 10,000, lowered here) is checked whole,
    then read again line by line as the fetch takes its ids into the on-disk ledger."""
    monkeypatch.setattr(run_module, "ONLY_AT_MOST", 5)
    handed: list[object] = []
    collect = run_module.collect_task_ids
    monkeypatch.setattr(
        run_module, "collect_task_ids", lambda *args: handed.append(collect(*args)) or handed[-1]
    )
    ids = world.task_ids()[:40]
    ids_file = tmp_path / "ids.txt"
    lines = ["# the tenant's tasks", *ids[:20], ids[0].upper(), "not-a-task", *ids[20:], ""]
    ids_file.write_text(
        "\n".join(f"  {line}  # given" if i % 7 == 0 else line for i, line in enumerate(lines))
    )
    options = loader.options()
    options.task_ids_file = str(ids_file)

    result = run(options)

    assert [type(ids) for ids in handed] == [IdsInOrder]  # not a list of the file's ids
    assert loader.followers() == truth(world, ids)
    assert loader.statuses()["not-a-task"] == "invalid_task"
    assert result.stats.tasks_queued == 41  # the upper-case spelling is the same task, once
