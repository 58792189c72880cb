"""Follow history (``task_follower_history``), derived after each load from what it changed.

Why not dlt's ``scd2`` merge strategy: it retires rows only for keys present in the load, so
a task whose followers were all removed (no rows at all) would never close its intervals, and
it has no notion of "this task failed, leave its history alone". Instead, each completed dlt
load is applied once, in one transaction, recorded in ``_feishu_history_loads``: a run
killed before or during this step is completed by the next run, exactly once.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase

from .relations import BASE_TABLE, dataset_relations, empty_relation
from .uniqueness import collapse_duplicates

HISTORY_TABLE = "task_follower_history"
APPLIED_TABLE = "_feishu_history_loads"
FIRST_SEEN_TABLE = "task_first_seen"

# Portable SQL (DuckDB, MotherDuck, Postgres): standard types, no temp tables, %s parameters.
# {names} are qualified table names, filled in by ``_qualified_names``.
_CREATE_TABLES = (
    """create table if not exists {task_follower_history} (
            task_id varchar not null,
            follower_id varchar not null,
            user_id_type varchar not null,
            valid_from timestamptz not null,
            valid_to timestamptz,
            primary key (task_id, follower_id, user_id_type, valid_from))""",
    """create table if not exists {task_first_seen} (
            task_id varchar primary key, first_ok_at timestamptz not null)""",
    """create table if not exists {_feishu_history_loads} (
            load_id varchar primary key, applied_at timestamptz not null)""",
)

_FOLLOWER_COLUMNS = (("task_id", "varchar"), ("follower_id", "varchar"), ("user_id_type", "varchar"))

# The tasks one load fetched successfully, and when (its one parameter is the load id).
_FETCHED_OK = """(select task_id, fetched_at from {task_fetch_status}
                  where _dlt_load_id = %s and status = 'ok')"""

# Completed loads of the schema whose history is not applied yet, oldest first.
_PENDING_LOADS = """select load_id from {_dlt_loads} where status = 0 and schema_name = %s
                    and load_id not in (select load_id from {_feishu_history_loads}) order by load_id"""

# One load's changes, in order; each statement takes the load id once per %s.
_APPLY_LOAD = (
    # close the open intervals of fetched tasks whose follow is gone
    """update {task_follower_history} as h set valid_to = ok.fetched_at
        from {fetched_ok} ok
        where h.task_id = ok.task_id and h.valid_to is null
          and not exists (
              select 1 from {task_followers} f
              where f.task_id = h.task_id and f.follower_id = h.follower_id
                and f.user_id_type = h.user_id_type)""",
    # open an interval for each follow of a fetched task that has none open
    """insert into {task_follower_history} (task_id, follower_id, user_id_type, valid_from)
        select f.task_id, f.follower_id, f.user_id_type, ok.fetched_at
        from {task_followers} f join {fetched_ok} ok on ok.task_id = f.task_id
        where not exists (
            select 1 from {task_follower_history} h
            where h.task_id = f.task_id and h.follower_id = f.follower_id
              and h.user_id_type = f.user_id_type and h.valid_to is null)""",
    """insert into {task_first_seen} (task_id, first_ok_at)
        select ok.task_id, ok.fetched_at from {fetched_ok} ok
        where ok.task_id not in (select task_id from {task_first_seen})""",
    "insert into {_feishu_history_loads} (load_id, applied_at) values (%s, now())",
)


def apply_history(pipeline: dlt.Pipeline) -> int:
    """Apply every completed load not yet applied, oldest first; returns how many were applied.

    Intervals open at the first fetch that saw a follow and close at the first fetch of that
    task that no longer saw it; both carry that fetch's ``fetched_at`` (observation time).
    Only tasks fetched successfully in a load take part: an error changes no history.
    ``task_first_seen`` keeps each task's first successful fetch, so that analyses can tell
    follows that existed before the connector first looked from follows added later.
    """
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return 0
        relations = dataset_relations(client)
        if relations.get("task_fetch_status") != BASE_TABLE:
            return 0  # nothing loaded yet
        names = _qualified_names(client)
        if relations.get("task_followers") != BASE_TABLE:  # no task had followers yet
            names["task_followers"] = empty_relation(_FOLLOWER_COLUMNS)
        names["fetched_ok"] = _FETCHED_OK.format(**names)
        for statement in _CREATE_TABLES:
            client.execute_sql(statement.format(**names))
        rows = client.execute_sql(_PENDING_LOADS.format(**names), pipeline.default_schema_name)
        pending = [str(row[0]) for row in rows or ()]
        for load_id in pending:
            _apply_load(client, names, relations, load_id)
        return len(pending)


def _qualified_names(client: SqlClientBase[Any]) -> dict[str, str]:
    tables = (
        "task_fetch_status",
        "task_followers",
        "_dlt_loads",
        HISTORY_TABLE,
        FIRST_SEEN_TABLE,
        APPLIED_TABLE,
    )
    return {table: client.make_qualified_table_name(table) for table in tables}


def _apply_load(
    client: SqlClientBase[Any], names: dict[str, str], relations: dict[str, str], load_id: str
) -> None:
    """One load's changes and its bookkeeping row, atomically (duplicates collapsed first).

    dlt's ``begin_transaction`` rolls back on any error and re-raises that error, also when the
    destination already ended the transaction itself: the failure the user sees is the real one.
    """
    with client.begin_transaction():
        collapse_duplicates(client, relations, load_id)
        for statement in _APPLY_LOAD:
            sql = statement.format(**names)
            client.execute_sql(sql, *[load_id] * sql.count("%s"))
