"""A dataset loaded before ``tenant_key`` existed keeps loading after the upgrade (DuckDB and Postgres).

The dataset of the version before is made from a real load by taking the column away again: the
views first (they read it), then the column from every table that has it (dlt's child tables such
as ``tasks__collaborators`` too), and on Postgres the keys of the tables the post-load steps make
are declared as that version declared them. The next run must give every
old row the custom app's tenant (``''``), re-declare the keys, and merge into the old rows: no
follow twice, the history continued, not restarted.
"""

from __future__ import annotations

import dataclasses

import dlt
import pytest

import feishu_tasks.source as source_module
from feishu_followers.options import RunOptions
from feishu_followers.run import run
from feishu_simulator import World

from .conftest import DATASET, Loader, on_every_destination, truth

OLD_PRIMARY_KEYS = {
    "task_follower_history": "task_id, follower_id, user_id_type, valid_from",
    "task_first_seen": "task_id",
    "_feishu_history_loads": "load_id",
}


def relations(loader: Loader, kind: str) -> set[str]:
    rows = loader.query(
        "select table_name from information_schema.tables where table_schema = %s and table_type = %s",
        DATASET,
        kind,
    )
    return {str(row[0]) for row in rows}


def with_tenant_key(loader: Loader) -> set[str]:
    """The tables of the dataset that have the column."""
    rows = loader.query(
        "select c.table_name from information_schema.columns c join information_schema.tables t "
        "on t.table_schema = c.table_schema and t.table_name = c.table_name "
        "where c.table_schema = %s and c.column_name = 'tenant_key' and t.table_type = 'BASE TABLE'",
        DATASET,
    )
    return {str(row[0]) for row in rows}


def make_it_as_before(loader: Loader) -> set[str]:
    """The dataset as the version without ``tenant_key`` left it; the tables that had the column."""
    cascade = " cascade" if loader.destination == "postgres" else ""
    for view in relations(loader, "VIEW"):
        loader.execute(f"drop view if exists {DATASET}.{view}{cascade}")
    tables = with_tenant_key(loader)
    for table in tables:
        loader.execute(f"alter table {DATASET}.{table} drop column tenant_key")
    if loader.destination == "postgres":
        for table, key in OLD_PRIMARY_KEYS.items():
            loader.execute(f"alter table {DATASET}.{table} add primary key ({key})")
    assert not with_tenant_key(loader)
    return tables


def primary_key_columns(loader: Loader, table: str) -> list[str]:
    rows = loader.query(
        """select k.column_name from information_schema.table_constraints c
           join information_schema.key_column_usage k
             on k.constraint_name = c.constraint_name and k.table_schema = c.table_schema
           where c.table_schema = %s and c.table_name = %s and c.constraint_type = 'PRIMARY KEY'
           order by k.ordinal_position""",
        DATASET,
        table,
    )
    return [str(row[0]) for row in rows]


@on_every_destination
def test_a_dataset_from_before_tenant_key_keeps_loading(
    loader: Loader, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = world.task_ids()
    changed = next(t for t in ids if 2 <= len(world.followers(t)) <= 20)
    with monkeypatch.context() as before_it:  # that version's dlt schema did not propagate the column
        before_it.setattr(source_module, "propagate_common_columns", lambda schema: None)
        loader.run(ids, discover=True)  # the listed tasks too, with their child table tasks__collaborators
    had_it = make_it_as_before(loader)
    assert {"tasks__collaborators", "_feishu_history_loads", "task_follower_history"} <= had_it
    before = loader.query(f"select count(*) from {DATASET}.task_follower_history")[0][0]

    gone = world.followers(changed)[0]
    world.remove_follower(changed, gone)
    world.add_follower(changed)
    run(dataclasses.replace(loader.options(ids, discover=True), full_refresh=True))  # every task listed again

    assert loader.followers() == truth(world, ids)  # each follow once: the old rows were merged into
    assert with_tenant_key(loader) == had_it  # every table has it again
    # and dlt writes it into the child table now (its default would hide that it does not)
    stored = dlt.attach(RunOptions.pipeline_name, pipelines_dir=str(loader.pipelines_dir)).default_schema
    assert "tenant_key" in stored.get_table_columns("tasks__collaborators")
    for table in had_it:  # the old rows given '', the new ones (every task listed again) the run's
        keys = loader.query(f"select distinct tenant_key from {DATASET}.{table}")
        assert keys == [("",)], (table, keys)
    closed = loader.query(
        f"select valid_to from {DATASET}.task_follower_history where task_id = %s and follower_id = %s",
        changed,
        gone,
    )
    assert len(closed) == 1 and closed[0][0] is not None  # the old interval, continued and closed
    after = loader.query(f"select count(*) from {DATASET}.task_follower_history")[0][0]
    assert after == before + 1  # only the new follow opened an interval
    per_task = loader.query(
        f"select tenant_key, followers from {DATASET}.followers_per_task where task_id = %s", changed
    )
    assert per_task == [("", len(world.followers(changed)))]
    if loader.destination == "postgres":
        for table in OLD_PRIMARY_KEYS:
            assert primary_key_columns(loader, table)[0] == "tenant_key", table
