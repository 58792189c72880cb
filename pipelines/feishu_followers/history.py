"""Follow history (``task_follower_history``), derived after each load from what it changed.

Why not dlt's ``scd2`` merge strategy: it retires rows only for keys present in the load, so
a task whose followers were all removed (no rows at all) would never close its intervals, and
it has no notion of "this task failed, leave its history alone". Instead, each completed dlt
load is applied once, in one DuckDB transaction, recorded in ``_feishu_history_loads``: a run
killed before or during this step is completed by the next run, exactly once.
"""

from __future__ import annotations

from typing import Any

import dlt

HISTORY_TABLE = "task_follower_history"
APPLIED_TABLE = "_feishu_history_loads"
FIRST_SEEN_TABLE = "task_first_seen"


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
        con = client.native_connection
        ds = client.fully_qualified_dataset_name()
        if not _table_exists(con, pipeline.dataset_name, "task_fetch_status"):
            return 0
        _create_tables(con, ds)
        pending = [
            row[0]
            for row in con.execute(
                f"""select load_id from {ds}._dlt_loads
                    where status = 0 and schema_name = ?
                      and load_id not in (select load_id from {ds}.{APPLIED_TABLE})
                    order by load_id""",
                [pipeline.default_schema_name],
            ).fetchall()
        ]
        for load_id in pending:
            _apply_load(con, ds, load_id)
        return len(pending)


def _table_exists(con: Any, schema: str, table: str) -> bool:
    found = con.execute(
        "select 1 from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchall()
    return bool(found)


def _create_tables(con: Any, ds: str) -> None:
    con.execute(
        f"""create table if not exists {ds}.{HISTORY_TABLE} (
                task_id varchar not null,
                follower_id varchar not null,
                user_id_type varchar not null,
                valid_from timestamptz not null,
                valid_to timestamptz,
                primary key (task_id, follower_id, user_id_type, valid_from))"""
    )
    con.execute(
        f"""create table if not exists {ds}.{FIRST_SEEN_TABLE} (
                task_id varchar primary key, first_ok_at timestamptz not null)"""
    )
    con.execute(
        f"""create table if not exists {ds}.{APPLIED_TABLE} (
                load_id varchar primary key, applied_at timestamptz not null)"""
    )


def _apply_load(con: Any, ds: str, load_id: str) -> None:
    """One load's changes and its bookkeeping row, atomically."""
    con.execute("begin transaction")
    try:
        con.execute(
            f"""create or replace temp table _fetched_ok as
                select task_id, fetched_at from {ds}.task_fetch_status
                where _dlt_load_id = ? and status = 'ok'""",
            [load_id],
        )
        con.execute(
            f"""update {ds}.{HISTORY_TABLE} as h set valid_to = ok.fetched_at
                from _fetched_ok ok
                where h.task_id = ok.task_id and h.valid_to is null
                  and not exists (
                      select 1 from {ds}.task_followers f
                      where f.task_id = h.task_id and f.follower_id = h.follower_id
                        and f.user_id_type = h.user_id_type)"""
        )
        con.execute(
            f"""insert into {ds}.{HISTORY_TABLE}
                select f.task_id, f.follower_id, f.user_id_type, ok.fetched_at, null
                from {ds}.task_followers f join _fetched_ok ok on ok.task_id = f.task_id
                where not exists (
                    select 1 from {ds}.{HISTORY_TABLE} h
                    where h.task_id = f.task_id and h.follower_id = f.follower_id
                      and h.user_id_type = f.user_id_type and h.valid_to is null)"""
        )
        con.execute(
            f"""insert into {ds}.{FIRST_SEEN_TABLE}
                select task_id, fetched_at from _fetched_ok
                where task_id not in (select task_id from {ds}.{FIRST_SEEN_TABLE})"""
        )
        con.execute(f"insert into {ds}.{APPLIED_TABLE} values (?, now())", [load_id])
        con.execute("drop table _fetched_ok")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
