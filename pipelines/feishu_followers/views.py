"""Analyst views in the dataset: the questions people ask first, answered in SQL.

Refreshed after every load (``run.after_load``) with ``CREATE OR REPLACE VIEW``. The views are
not managed by dlt: dlt neither knows nor drops them, and its schema evolution (new columns,
new tables) does not touch them; the next run recreates them to match the tables it finds.
A table that does not exist yet (``tasks`` without ``--discover``, the history before its
first load) is replaced by an empty relation of the same shape, so every view always answers.
"""

from __future__ import annotations

from datetime import timedelta

import dlt
import duckdb

from feishu_tasks.settings import STATUSES

STALE_AFTER = timedelta(hours=24)  # default threshold of the ``stale_tasks`` view

# Buckets of follower_count_distribution: (order, label, min, max or None for no upper bound).
BUCKETS: tuple[tuple[int, str, int, int | None], ...] = (
    (1, "0", 0, 0),
    (2, "1", 1, 1),
    (3, "2-5", 2, 5),
    (4, "6-20", 6, 20),
    (5, "21-50", 21, 50),
    (6, "51+", 51, None),
)

# Columns the views read from each loaded table; a missing table becomes an empty relation.
_SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "task_followers": (("task_id", "varchar"), ("follower_id", "varchar"), ("user_id_type", "varchar")),
    "task_fetch_status": (
        ("task_id", "varchar"),
        ("status", "varchar"),
        ("follower_count", "bigint"),
        ("error_code", "bigint"),
        ("error_msg", "varchar"),
        ("user_id_type", "varchar"),
        ("fetched_at", "timestamptz"),
        ("last_ok_at", "timestamptz"),
    ),
    "task_follower_history": (
        ("task_id", "varchar"),
        ("follower_id", "varchar"),
        ("user_id_type", "varchar"),
        ("valid_from", "timestamptz"),
        ("valid_to", "timestamptz"),
    ),
    "task_first_seen": (("task_id", "varchar"), ("first_ok_at", "timestamptz")),
    "_dlt_loads": (("load_id", "varchar"), ("status", "bigint"), ("inserted_at", "timestamptz")),
}
# Task fields shown beside follower counts: (column in ``tasks``, name in the view, type).
_TASK_FIELDS = (
    ("summary", "summary", "varchar"),
    ("create_time", "create_time", "timestamptz"),
    ("update_time", "update_time", "timestamptz"),
    ("complete_time", "complete_time", "timestamptz"),
    ("due__time", "due_time", "timestamptz"),
)


def create_views(target: dlt.Pipeline | duckdb.DuckDBPyConnection, dataset: str | None = None) -> list[str]:
    """Create or refresh every view in ``dataset``; returns their names (none before any load).

    ``target`` is a dlt pipeline (its destination dataset) or a writable DuckDB connection
    (then ``dataset`` names the schema, default ``feishu_tasks``).
    """
    if isinstance(target, duckdb.DuckDBPyConnection):
        return _create(target, dataset or "feishu_tasks")
    with target.sql_client() as client:
        if not client.has_dataset():
            return []
        return _create(client.native_connection, dataset or target.dataset_name)


def _create(con: duckdb.DuckDBPyConnection, dataset: str) -> list[str]:
    """All views in one transaction: readers see the old set or the new one, never a mix."""
    tables = {
        row[0]: row[1]
        for row in con.execute(
            "select table_name, table_type from information_schema.tables where table_schema = ?", [dataset]
        ).fetchall()
    }
    if not tables:
        return []  # the dataset does not exist yet; dlt creates it on the first load
    ds = _quote(dataset)
    sources = {
        name: f"{ds}.{_quote(name)}" if tables.get(name) == "BASE TABLE" else _empty(columns)
        for name, columns in _SOURCES.items()
    }
    task_columns = _task_columns(con, dataset) if tables.get("tasks") == "BASE TABLE" else {}
    views = _view_sql(ds, sources, task_columns)
    con.execute("begin transaction")
    try:
        for name, sql in views.items():
            con.execute(f"create or replace view {ds}.{_quote(name)} as {sql}")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return list(views)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _empty(columns: tuple[tuple[str, str], ...]) -> str:
    """A relation with these columns and no rows, standing in for a table not loaded yet."""
    return "(select " + ", ".join(f"null::{kind} as {name}" for name, kind in columns) + " where false)"


def _task_columns(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = 'tasks'",
        [dataset],
    ).fetchall()
    return {row[0] for row in rows}


def _view_sql(ds: str, src: dict[str, str], task_columns: set[str]) -> dict[str, str]:
    """Name → SQL of each view, in creation order (later views read earlier ones)."""
    fields = ", ".join(
        f"t.{_quote(column)} as {name}" if column in task_columns else f"null::{kind} as {name}"
        for column, name, kind in _TASK_FIELDS
    )
    tasks_join = f"left join {ds}.tasks t on t.id = k.task_id" if task_columns else ""
    buckets = ", ".join(
        f"({o}, '{label}', {lo}, {'null' if hi is None else hi})" for o, label, lo, hi in BUCKETS
    )
    statuses = ", ".join(f"({i}, '{status}')" for i, status in enumerate(STATUSES, 1))
    # A follow counts as added when it appeared after the task's first successful fetch;
    # follows seen by that first fetch were already there (see pipelines/history.py).
    events = f"""
        select h.valid_from as observed_at, 1 as added, 0 as removed
        from {src["task_follower_history"]} h join {src["task_first_seen"]} s on s.task_id = h.task_id
        where h.valid_from > s.first_ok_at
        union all
        select valid_to, 0, 1 from {src["task_follower_history"]} where valid_to is not null"""
    utc_day = "(({}) at time zone 'UTC')::date"
    return {
        # Every task with known followers: fetched ok (0 followers included) or keeping the
        # rows of an earlier successful fetch after a failed one (see the status column).
        "followers_per_task": f"""
            with counts as (
                select task_id, count(*) as followers from {src["task_followers"]} group by task_id),
            known as (
                select task_id from {src["task_fetch_status"]} where status = 'ok'
                union select task_id from counts)
            select k.task_id, coalesce(c.followers, 0) as followers, s.status, s.last_ok_at, {fields}
            from known k
            left join counts c on c.task_id = k.task_id
            left join {src["task_fetch_status"]} s on s.task_id = k.task_id
            {tasks_join}""",
        "follower_count_distribution": f"""
            with buckets(bucket_order, bucket, min_followers, max_followers) as (values {buckets})
            select b.bucket_order, b.bucket, b.min_followers, b.max_followers, count(f.task_id) as tasks
            from buckets b left join {ds}.followers_per_task f
              on f.followers >= b.min_followers
             and (b.max_followers is null or f.followers <= b.max_followers)
            group by all order by b.bucket_order""",
        "tasks_per_follower": f"""
            with now_ as (
                select follower_id, user_id_type, count(*) as tasks_now
                from {src["task_followers"]} group by all),
            ever as (  -- the history's open intervals are exactly the current follows
                select follower_id, user_id_type, count(distinct task_id) as tasks_ever
                from {src["task_follower_history"]} group by all)
            select e.follower_id, e.user_id_type, coalesce(n.tasks_now, 0) as tasks_now, e.tasks_ever
            from ever e left join now_ n
              on n.follower_id = e.follower_id and n.user_id_type = e.user_id_type""",
        # Each unordered pair once (follower_a < follower_b): the edges of the network.
        "co_following_pairs": f"""
            select a.follower_id as follower_a, b.follower_id as follower_b, a.user_id_type,
                   count(*) as shared_tasks
            from {src["task_followers"]} a join {src["task_followers"]} b
              on b.task_id = a.task_id and b.user_id_type = a.user_id_type and a.follower_id < b.follower_id
            group by all""",
        "tasks_without_followers": f"""
            select * exclude (followers) from {ds}.followers_per_task
            where status = 'ok' and followers = 0""",
        # Days (UTC) from the first observation to the latest successful fetch, zeros included.
        "follow_churn_daily": f"""
            with events as ({events}),
            bounds as (
                select min(day) as lo, max(day) as hi from (
                    select {utc_day.format("observed_at")} as day from events
                    union all select {utc_day.format("first_ok_at")} from {src["task_first_seen"]}
                    union all select {utc_day.format("last_ok_at")} from {src["task_fetch_status"]})),
            days as (
                select unnest(generate_series(lo::timestamp, hi::timestamp, interval 1 day))::date as day
                from bounds where lo is not null),
            per_day as (
                select {utc_day.format("observed_at")} as day, sum(added) as added, sum(removed) as removed
                from events group by 1)
            select d.day, coalesce(p.added, 0)::bigint as added, coalesce(p.removed, 0)::bigint as removed,
                   (coalesce(p.added, 0) - coalesce(p.removed, 0))::bigint as net
            from days d left join per_day p on p.day = d.day order by d.day""",
        # Each change belongs to the load that observed it: the first load completed after it.
        "follow_churn_per_load": f"""
            with events as ({events}),
            loads as (select load_id, inserted_at as loaded_at from {src["_dlt_loads"]} where status = 0),
            per_load as (
                select l.load_id, sum(e.added) as added, sum(e.removed) as removed
                from events e asof join loads l on e.observed_at <= l.loaded_at group by 1)
            select l.load_id, l.loaded_at, coalesce(p.added, 0)::bigint as added,
                   coalesce(p.removed, 0)::bigint as removed,
                   (coalesce(p.added, 0) - coalesce(p.removed, 0))::bigint as net
            from loads l left join per_load p on p.load_id = l.load_id order by l.loaded_at""",
        # age: time since the task was last seen whole (last ok fetch, else last try), the
        # measure ``--stale-after`` uses.
        "task_last_fetch": f"""
            select task_id, status, error_code, error_msg, follower_count, user_id_type, fetched_at,
                   last_ok_at, now() - coalesce(last_ok_at, fetched_at) as age
            from {src["task_fetch_status"]}""",
        # Same rule as ``--stale-after``: invalid ids are never due again.
        "stale_tasks": f"""
            select * from {ds}.task_last_fetch
            where status <> 'invalid_task' and age > to_seconds({STALE_AFTER.total_seconds()})
            order by age desc, task_id""",
        "load_health": f"""
            with known(status_order, status) as (values {statuses}),
            found as (
                select status from known union select distinct status from {ds}.task_last_fetch)
            select s.status, count(f.task_id) as tasks,
                   count(f.task_id) filter (where f.task_id in (select task_id from {ds}.stale_tasks))
                       as stale_tasks,
                   max(f.fetched_at) as last_fetched_at
            from found s left join known k on k.status = s.status
            left join {ds}.task_last_fetch f on f.status = s.status
            group by s.status, k.status_order order by coalesce(k.status_order, 99), s.status""",
    }
