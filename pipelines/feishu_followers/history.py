"""Follow history (``task_follower_history``), derived after each load from what it changed.

Why not dlt's ``scd2`` merge strategy (measured in docs/history.md, bench/scd2_experiment.py): it
dates every change with one boundary time per load, not each task's own observation time; it
cannot close the intervals of a task whose followers were all removed without extra scoping; and
it opens duplicate intervals when a resumed load writes its rows twice. Instead, each completed
dlt load is applied once, in one transaction, recorded in ``_feishu_history_loads``: a run killed
before or during this step is completed by the next run, exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase

from feishu_tasks.settings import FOLLOWER_SET_KNOWN
from feishu_tasks.tables import (
    DLT_LOADS,
    HISTORY_LOADS,
    SOURCE_TABLES,
    TASK_FETCH_STATUS,
    TASK_FIRST_SEEN,
    TASK_FOLLOWER_HISTORY,
    TASK_FOLLOWERS,
)
from feishu_tasks.tenant_column import add_tenant_key

from .relations import (
    BASE_TABLE,
    create_own_table,
    dataset_relations,
    declares_primary_keys,
    empty_relation,
    table_columns,
)

HISTORY_TABLE = TASK_FOLLOWER_HISTORY.name
APPLIED_TABLE = HISTORY_LOADS.name
FIRST_SEEN_TABLE = TASK_FIRST_SEEN.name
_MADE_HERE = (TASK_FOLLOWER_HISTORY, TASK_FIRST_SEEN, HISTORY_LOADS)

# Portable SQL (DuckDB, MotherDuck, Postgres): standard types, %s parameters. {names} are
# qualified table names, filled in by ``_qualified_names``.

# The tasks whose follower set one load learned, and when that set held: the time of the event
# that explains the change, else the fetch's (``observed_at``; a dataset loaded before it existed
# has only ``fetched_at``). Its one parameter is the load id.
_KNOWN = ", ".join(f"'{status}'" for status in FOLLOWER_SET_KNOWN)
_FETCHED_OK = (
    """(select tenant_key, task_id, {observed} as fetched_at from {task_fetch_status}
                  where _dlt_load_id = %s and status in ("""
    + _KNOWN
    + "))"
)

# Completed loads of the schema whose history is not applied yet, oldest first.
_PENDING_LOADS = """select load_id from {_dlt_loads} where status = 0 and schema_name = %s
                    and load_id not in (select load_id from {_feishu_history_loads}) order by load_id"""

# One load's changes, in order, in one transaction; each statement takes the load id once per %s.
#
# Memory: DuckDB keeps to its memory_limit by spilling, but not in every plan. Comparing the
# history with task_followers in one statement, its optimizer joins the whole of one table
# before cutting it down to the load's tasks (a RIGHT_ANTI or MARK join built on all open
# intervals, or all follows), which does not spill: with 10M follows it failed at a 96MB limit.
# So the load's rows are first copied into work tables (``_feishu_work_*``, made and dropped in
# the same transaction, so a failure leaves none), and the comparisons run between those: plain
# anti joins of one part's rows, which spill. Measured (bench/load_only.py, BENCHMARKS.md): a
# 500,000-row part against a 15M-row history fits in 32MB, in seconds. Intervals are closed by
# DuckDB's rowid (30 s → 0.2 s for 500,000 closes), on Postgres by the primary key's index.
_WORK_TABLES = ("_feishu_work_ok", "_feishu_work_current", "_feishu_work_open", "_feishu_work_gone")
_SAME_TASK = "{a}.tenant_key = {b}.tenant_key and {a}.task_id = {b}.task_id"
_SAME_FOLLOW = _SAME_TASK + " and {a}.follower_id = {b}.follower_id and {a}.user_id_type = {b}.user_id_type"
_APPLY_LOAD = (
    # the tasks whose follower set the load learned, when; their follows now; their open intervals
    "create table {_feishu_work_ok} as select k.tenant_key, k.task_id, k.fetched_at from {fetched_ok} k",
    f"""create table {{_feishu_work_current}} as select f.tenant_key, f.task_id, f.follower_id, f.user_id_type
        from {{task_followers}} f join {{_feishu_work_ok}} k on {_SAME_TASK.format(a="k", b="f")}""",
    f"""create table {{_feishu_work_open}} as
        select {{row_locator}} h.tenant_key, h.task_id, h.follower_id, h.user_id_type, h.valid_from
        from {{task_follower_history}} h join {{_feishu_work_ok}} k on {_SAME_TASK.format(a="k", b="h")}
        where h.valid_to is null""",
    # close the open intervals whose follow is gone
    f"""create table {{_feishu_work_gone}} as select o.*, k.fetched_at
        from {{_feishu_work_open}} o join {{_feishu_work_ok}} k on {_SAME_TASK.format(a="k", b="o")}
        where not exists (
            select 1 from {{_feishu_work_current}} c where {_SAME_FOLLOW.format(a="c", b="o")})""",
    """update {task_follower_history} as h set valid_to = g.fetched_at from {_feishu_work_gone} g
        where {same_interval}""",
    # open an interval for each follow that has none open
    f"""insert into {{task_follower_history}} (tenant_key, task_id, follower_id, user_id_type, valid_from)
        select c.tenant_key, c.task_id, c.follower_id, c.user_id_type, k.fetched_at
        from {{_feishu_work_current}} c join {{_feishu_work_ok}} k on {_SAME_TASK.format(a="k", b="c")}
        where not exists (
            select 1 from {{_feishu_work_open}} o where {_SAME_FOLLOW.format(a="o", b="c")})""",
    f"""insert into {{task_first_seen}} (tenant_key, task_id, first_ok_at)
        select k.tenant_key, k.task_id, k.fetched_at from {{_feishu_work_ok}} k
        where not exists (select 1 from {{task_first_seen}} s where {_SAME_TASK.format(a="s", b="k")})""",
    # the load's tenant: the one of the tasks it fetched (one tenant per dlt pipeline, so per load)
    """insert into {_feishu_history_loads} (tenant_key, load_id, applied_at)
        select coalesce(min(tenant_key), ''), %s, now() from {task_fetch_status} where _dlt_load_id = %s""",
    *(f"drop table {{{table}}}" for table in _WORK_TABLES),
)
# How an interval found in the work tables is found again in the history: DuckDB's rowid (stable
# within the transaction: only these statements write the history, under the run's lock), or the
# primary key on Postgres, whose index finds it.
_ROW_LOCATOR = {"duckdb": "h.rowid as row_locator,", "other": ""}
_SAME_INTERVAL = {
    "duckdb": "h.rowid = g.row_locator",
    "other": _SAME_FOLLOW.format(a="h", b="g") + " and h.valid_from = g.valid_from and h.valid_to is null",
}


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
        add_tenant_key(client)  # a dataset from before the column: it gets it first
        relations = dataset_relations(client)
        if relations.get("task_fetch_status") != BASE_TABLE:
            return 0  # nothing loaded yet
        names = _qualified_names(client)
        if relations.get("task_followers") != BASE_TABLE:  # no task had followers yet
            names["task_followers"] = empty_relation(TASK_FOLLOWERS)
        dialect = "other" if declares_primary_keys(client) else "duckdb"
        names |= {"row_locator": _ROW_LOCATOR[dialect], "same_interval": _SAME_INTERVAL[dialect]}
        status_columns = table_columns(client, TASK_FETCH_STATUS.name)
        observed = "coalesce(observed_at, fetched_at)" if "observed_at" in status_columns else "fetched_at"
        names["fetched_ok"] = _FETCHED_OK.format(observed=observed, **names)
        for table in _MADE_HERE:
            create_own_table(client, table, relations)
        rows = client.execute_sql(_PENDING_LOADS.format(**names), pipeline.default_schema_name)
        pending = [str(row[0]) for row in rows or ()]
        for load_id in pending:
            _apply_load(client, names, relations, load_id)
        return len(pending)


def _qualified_names(client: SqlClientBase[Any]) -> dict[str, str]:
    tables = (TASK_FETCH_STATUS.name, TASK_FOLLOWERS.name, DLT_LOADS.name, *(t.name for t in _MADE_HERE))
    return {table: client.make_qualified_table_name(table) for table in (*tables, *_WORK_TABLES)}


def _apply_load(
    client: SqlClientBase[Any], names: dict[str, str], relations: dict[str, str], load_id: str
) -> None:
    """One load's changes and its bookkeeping row, atomically (duplicates collapsed first).

    dlt's ``begin_transaction`` rolls back on any error and re-raises that error, also when the
    destination already ended the transaction itself: the failure the user sees is the real one.
    """
    with client.begin_transaction():
        collapse_duplicates(client, relations, load_id)
        for table in _WORK_TABLES:  # none, unless a destination kept them past a failed transaction
            client.execute_sql(f"drop table if exists {names[table]}")
        for statement in _APPLY_LOAD:
            sql = statement.format(**names)
            client.execute_sql(sql, *[load_id] * sql.count("%s"))


# ---------------------------------------------------------------------------- rows a resumed load wrote twice
# Seen on Postgres under load: a run killed while dlt loads a package in parallel can leave a
# copy into a staging table that the server completes and commits after the client is gone. dlt
# does not know, and when the next run resumes the package it copies that file again; the merge
# then inserts every row of it twice, because the tables merged per key declare no primary key for
# dlt to deduplicate on (a merge key alone keeps the merge fast, see the registry). So before a
# load's history is applied, the rows that load wrote are checked against their row key
# (``Table.row_key``) and any duplicate is collapsed to one row, in the same transaction.
CHUNK = 200  # keys per statement


def _chunks(rows: Sequence[tuple[Any, ...]], size: int) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def collapse_duplicates(client: SqlClientBase[Any], relations: dict[str, str], load_id: str) -> int:
    """Collapse duplicate rows written by ``load_id``; how many extra rows were removed."""
    removed = 0
    for table in SOURCE_TABLES:
        key = table.row_keys
        if not key or relations.get(table.name) != BASE_TABLE:
            continue
        name = client.make_qualified_table_name(table.name)
        columns = ", ".join(client.escape_column_name(column) for column in key)
        duplicated = client.execute_sql(
            f"select {columns}, count(*) from {name} where _dlt_load_id = %s group by {columns} "
            "having count(*) > 1",
            load_id,
        )
        for chunk in _chunks([tuple(row[: len(key)]) for row in duplicated or ()], CHUNK):
            removed += _keep_one_of_each(client, name, key, chunk)
    return removed


def _keep_one_of_each(
    client: SqlClientBase[Any], name: str, key: tuple[str, ...], keys: Sequence[tuple[Any, ...]]
) -> int:
    """Replace the rows with these keys by one row per key."""
    match = " and ".join(f"{client.escape_column_name(column)} = %s" for column in key)
    where = " or ".join(f"({match})" for _ in keys)
    params = [value for row in keys for value in row]
    with client.execute_query(f"select * from {name} where {where}", *params) as cursor:
        columns = [description[0] for description in cursor.description]
        rows = cursor.fetchall()
    positions = [columns.index(column) for column in key]
    kept: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        kept.setdefault(tuple(row[p] for p in positions), tuple(row))
    client.execute_sql(f"delete from {name} where {where}", *params)
    insert = (
        f"insert into {name} ({', '.join(client.escape_column_name(c) for c in columns)}) "
        f"values ({', '.join(['%s'] * len(columns))})"
    )
    for row in kept.values():
        client.execute_sql(insert, *row)
    return len(rows) - len(kept)
