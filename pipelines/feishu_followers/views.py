"""Analyst views in the dataset: the questions people ask first, answered in SQL.

Per tenant and across tenants: every view that lists tasks or followers has ``tenant_key`` as
its last column (filter on it for one tenant); the churn and health views count every tenant, and
``tenant_view_sql`` gives the same views over one tenant's rows (``FollowerAnalytics.for_tenant``).

Refreshed after every load (``run.after_load``). The views are not managed by dlt: dlt neither
knows nor drops them, and its schema evolution (new columns, new tables) does not touch them;
the next run rebuilds them to match the tables it finds. A table that does not exist yet
(``tasks`` without ``--discover``, the history before its first load) is replaced by an empty
relation of the same shape, so every view always answers.

The SQL is written once, in the part of SQL that DuckDB (so MotherDuck) and Postgres share,
and runs through dlt's SQL client. Postgres cannot ``create or replace`` a view whose columns
change, so a refresh drops and recreates the whole set in one transaction; it happens only
when the SQL differs from what ``_feishu_views`` recorded (or a view is missing), so most runs
take no lock at all and views that users built on ours keep working.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase

from feishu_tasks.settings import NEVER_DUE, STATUSES
from feishu_tasks.tables import (
    DLT_LOADS,
    HISTORY_LOADS,
    TASK_FETCH_STATUS,
    TASK_FIRST_SEEN,
    TASK_FOLLOWER_HISTORY,
    TASK_FOLLOWERS,
    TASKLIST_TASKS,
    TASKS,
    VIEW_HASHES,
)
from feishu_tasks.tenant_column import tenant_condition

from .relations import (
    BASE_TABLE,
    VIEW,
    create_own_table,
    dataset_relations,
    empty_relation,
    quote,
    table_columns,
)

STALE_AFTER = timedelta(hours=24)  # default threshold of the ``stale_tasks`` view
VIEWS_TABLE = VIEW_HASHES.name  # view name → hash of the SQL it was created with

# Buckets of follower_count_distribution: (order, label, min, max or None for no upper bound).
BUCKETS: tuple[tuple[int, str, int, int | None], ...] = (
    (1, "0", 0, 0),
    (2, "1", 1, 1),
    (3, "2-5", 2, 5),
    (4, "6-20", 6, 20),
    (5, "21-50", 21, 50),
    (6, "51+", 51, None),
)

# The tables the views read; a table not loaded yet becomes an empty relation of its columns.
_SOURCES = (TASK_FOLLOWERS, TASK_FETCH_STATUS, TASK_FOLLOWER_HISTORY, TASK_FIRST_SEEN, DLT_LOADS)
# Task fields shown beside follower counts: (name in the view, type, column in ``tasks``, column
# in ``tasklist_tasks`` or None). A task's field comes from whichever table has it: ``tasks``
# (--discover) first, else the task lists' listing (--all-tasklists, the recommended mode).
_TASK_FIELDS: tuple[tuple[str, str, str, str | None], ...] = (
    ("summary", "varchar", "summary", "summary"),
    ("create_time", "timestamptz", "create_time", None),
    ("update_time", "timestamptz", "update_time", None),
    ("complete_time", "timestamptz", "complete_time", "completed_at"),
    ("due_time", "timestamptz", "due__time", "due_at"),
)


def create_views(pipeline: dlt.Pipeline) -> list[str]:
    """Create or refresh every view in the pipeline's dataset; returns their names (none before any load)."""
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return []  # dlt creates the dataset on the first load
        return refresh_views(client)


def refresh_views(client: SqlClientBase[Any]) -> list[str]:
    """The views of the client's dataset, rebuilt in one transaction when their SQL changed.

    Readers see the old set or the new one, never a mix; a failed refresh leaves the old set.
    """
    relations = dataset_relations(client)
    name = client.make_qualified_table_name
    views = _view_sql(client, _sources(client, relations, name), _loaded_task_fields(client, relations))
    wanted = {view: hashlib.sha256(sql.encode()).hexdigest() for view, sql in views.items()}
    if _recorded(client, relations) == wanted and all(relations.get(view) == VIEW for view in views):
        return list(views)
    create_own_table(client, VIEW_HASHES, relations)
    with client.begin_transaction():
        for view in reversed(views):  # dependents first: Postgres refuses to drop a view in use
            client.execute_sql(f"drop view if exists {name(view)}")
        for view, sql in views.items():
            client.execute_sql(f"create view {name(view)} as {sql}")
        client.execute_sql(f"delete from {name(VIEWS_TABLE)}")
        for view, digest in wanted.items():
            client.execute_sql(f"insert into {name(VIEWS_TABLE)} values (%s, %s)", view, digest)
    return list(views)


def tenant_view_sql(client: SqlClientBase[Any], tenant_key: str) -> dict[str, str]:
    """Each view's SQL over one tenant's rows: the same definitions (nothing is created), each table
    kept to the tenant and each view another one reads replaced by its own SQL for the tenant.

    The counts over a whole dataset (distribution, churn, health) are across tenants in the
    views; this is what ``FollowerAnalytics.for_tenant`` answers them with. dlt's ``_dlt_loads``
    has no tenant: its loads are those whose history ``_feishu_history_loads`` keeps for the tenant.
    """
    relations = dataset_relations(client)
    name = client.make_qualified_table_name
    condition = tenant_condition(tenant_key)  # a checked plain token, never a quote
    sources = _sources(client, relations, lambda table: f"(select * from {name(table)} where {condition})")
    if relations.get(DLT_LOADS.name) == BASE_TABLE and relations.get(HISTORY_LOADS.name) == BASE_TABLE:
        sources[DLT_LOADS.name] = (
            f"(select * from {name(DLT_LOADS.name)} where load_id in "
            f"(select load_id from {name(HISTORY_LOADS.name)} where {condition}))"
        )
    elif relations.get(DLT_LOADS.name) == BASE_TABLE:
        sources[DLT_LOADS.name] = name(DLT_LOADS.name)
    fields = _loaded_task_fields(client, relations)
    marked = _view_sql(client, sources, fields, view=lambda view: f"\x00{view}\x00")
    resolved: dict[str, str] = {}
    for view, sql in marked.items():  # in creation order: what a view reads is resolved before it
        for earlier, earlier_sql in resolved.items():
            sql = sql.replace(f"\x00{earlier}\x00", f"({earlier_sql})")
        resolved[view] = sql
    return resolved


def _sources(
    client: SqlClientBase[Any], relations: dict[str, str], relation: Callable[[str], str]
) -> dict[str, str]:
    """What the views read of each source table: ``relation(name)`` where the table is loaded, else an
    empty relation of its columns."""
    return {
        table.name: relation(table.name) if relations.get(table.name) == BASE_TABLE else empty_relation(table)
        for table in _SOURCES
    }


def _loaded_task_fields(client: SqlClientBase[Any], relations: dict[str, str]) -> tuple[str, str]:
    """``_task_fields`` of the task tables loaded so far."""
    loaded = {
        table: table_columns(client, table) if relations.get(table) == BASE_TABLE else set()
        for table in (TASKS.name, TASKLIST_TASKS.name)
    }
    return _task_fields(client, loaded[TASKS.name], loaded[TASKLIST_TASKS.name])


def _recorded(client: SqlClientBase[Any], relations: dict[str, str]) -> dict[str, str]:
    if relations.get(VIEWS_TABLE) != BASE_TABLE:
        return {}
    rows = client.execute_sql(
        f"select view_name, sql_sha256 from {client.make_qualified_table_name(VIEWS_TABLE)}"
    )
    return {str(view): str(digest) for view, digest in rows or ()}


def _task_fields(
    client: SqlClientBase[Any], task_columns: set[str], list_columns: set[str]
) -> tuple[str, str]:
    """The task fields' select list, and the joins that bring them (``k.task_id`` is the task)."""
    name = client.make_qualified_table_name
    has_lists = "task_guid" in list_columns
    listed = {field: column for field, _, _, column in _TASK_FIELDS if has_lists and column in list_columns}
    expressions = []
    for field, kind, task_column, _ in _TASK_FIELDS:
        found = [f"t.{quote(client, task_column)}"] if task_column in task_columns else []
        found += [f"l.{field}"] if field in listed else []
        value = f"coalesce({', '.join(found)})" if len(found) > 1 else found[0] if found else "null"
        expressions.append(f"cast({value} as {kind}) as {field}")
    joins = (
        f"left join {name(TASKS.name)} t on t.tenant_key = k.tenant_key and t.id = k.task_id"
        if task_columns
        else ""
    )
    if listed:  # a task in several lists has a row in each, with the same fields: one per task
        per_task = ", ".join(f"max({quote(client, column)}) as {field}" for field, column in listed.items())
        joins += f"""
            left join (select tenant_key, task_guid, {per_task} from {name(TASKLIST_TASKS.name)}
                       group by tenant_key, task_guid) l
              on l.tenant_key = k.tenant_key and l.task_guid = k.task_id"""
    return ", ".join(expressions), joins


def _view_sql(
    client: SqlClientBase[Any],
    src: dict[str, str],
    task_fields: tuple[str, str],
    view: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """Name → SQL of each view, in creation order (later views read earlier ones, through ``view``:
    the created view's name by default).

    Every source in a FROM has an alias: it may be a subquery (a table not loaded yet, or one
    tenant's rows), and Postgres before 16 requires one there.
    """
    view = view or client.make_qualified_table_name

    fields, tasks_join = task_fields
    field_names = ", ".join(field for field, _, _, _ in _TASK_FIELDS)
    buckets = ", ".join(
        f"({o}, '{label}', {lo}, {'null' if hi is None else hi})" for o, label, lo, hi in BUCKETS
    )
    statuses = ", ".join(f"({i}, '{status}')" for i, status in enumerate(STATUSES, 1))
    stale_after = f"interval '{int(STALE_AFTER.total_seconds())} seconds'"
    never_due = ", ".join(f"'{status}'" for status in NEVER_DUE)
    # A follow counts as added when it appeared after the task's first successful fetch;
    # follows seen by that first fetch were already there (see history.py).
    events = f"""
        select h.valid_from as observed_at, 1 as added, 0 as removed
        from {src["task_follower_history"]} h join {src["task_first_seen"]} s
          on s.tenant_key = h.tenant_key and s.task_id = h.task_id
        where h.valid_from > s.first_ok_at
        union all
        select valid_to, 0, 1 from {src["task_follower_history"]} h where valid_to is not null"""

    def utc_day(column: str) -> str:
        return f"cast(({column} at time zone 'UTC') as date)"

    return {
        # Every task with known followers: fetched ok (0 followers included) or keeping the
        # rows of an earlier successful fetch after a failed one (see the status column).
        "followers_per_task": f"""
            with counts as (
                select tenant_key, task_id, count(*) as followers from {src["task_followers"]} f
                group by tenant_key, task_id),
            known as (
                select tenant_key, task_id from {src["task_fetch_status"]} s where status = 'ok'
                union select tenant_key, task_id from counts)
            select k.task_id, coalesce(c.followers, 0) as followers, s.status, s.last_ok_at, {fields},
                   k.tenant_key
            from known k
            left join counts c on c.tenant_key = k.tenant_key and c.task_id = k.task_id
            left join {src["task_fetch_status"]} s on s.tenant_key = k.tenant_key and s.task_id = k.task_id
            {tasks_join}""",
        "follower_count_distribution": f"""
            with buckets(bucket_order, bucket, min_followers, max_followers) as (values {buckets})
            select b.bucket_order, b.bucket, b.min_followers, b.max_followers, count(f.task_id) as tasks
            from buckets b left join {view("followers_per_task")} f
              on f.followers >= b.min_followers
             and (b.max_followers is null or f.followers <= b.max_followers)
            group by b.bucket_order, b.bucket, b.min_followers, b.max_followers
            order by b.bucket_order""",
        "tasks_per_follower": f"""
            with now_ as (
                select tenant_key, follower_id, user_id_type, count(*) as tasks_now
                from {src["task_followers"]} f group by tenant_key, follower_id, user_id_type),
            ever as (  -- the history's open intervals are exactly the current follows
                select tenant_key, follower_id, user_id_type, count(distinct task_id) as tasks_ever
                from {src["task_follower_history"]} h group by tenant_key, follower_id, user_id_type)
            select e.follower_id, e.user_id_type, coalesce(n.tasks_now, 0) as tasks_now, e.tasks_ever,
                   e.tenant_key
            from ever e left join now_ n
              on n.tenant_key = e.tenant_key and n.follower_id = e.follower_id
             and n.user_id_type = e.user_id_type""",
        # Each unordered pair once (follower_a < follower_b): the edges of the network.
        "co_following_pairs": f"""
            select a.follower_id as follower_a, b.follower_id as follower_b, a.user_id_type,
                   count(*) as shared_tasks, a.tenant_key
            from {src["task_followers"]} a join {src["task_followers"]} b
              on b.tenant_key = a.tenant_key and b.task_id = a.task_id and b.user_id_type = a.user_id_type
             and a.follower_id < b.follower_id
            group by a.tenant_key, a.follower_id, b.follower_id, a.user_id_type""",
        "tasks_without_followers": f"""
            select task_id, status, last_ok_at, {field_names}, tenant_key from {view("followers_per_task")} f
            where status = 'ok' and followers = 0""",
        # Days (UTC) from the first observation to the latest successful fetch, zeros included.
        # A recursive CTE makes the calendar: generate_series differs between the dialects.
        "follow_churn_daily": f"""
            with recursive events as ({events}),
            bounds as (
                select min(day) as lo, max(day) as hi from (
                    select {utc_day("observed_at")} as day from events
                    union all select {utc_day("first_ok_at")} from {src["task_first_seen"]} s
                    union all select {utc_day("last_ok_at")} from {src["task_fetch_status"]} f) d),
            days(day) as (
                select lo from bounds where lo is not null
                union all
                select cast(d.day + interval '1 day' as date) from days d, bounds b where d.day < b.hi),
            per_day as (
                select {utc_day("observed_at")} as day, sum(added) as added, sum(removed) as removed
                from events group by {utc_day("observed_at")})
            select d.day, cast(coalesce(p.added, 0) as bigint) as added,
                   cast(coalesce(p.removed, 0) as bigint) as removed,
                   cast(coalesce(p.added, 0) - coalesce(p.removed, 0) as bigint) as net
            from days d left join per_day p on p.day = d.day order by d.day""",
        # Each change belongs to the load that observed it: the first load completed after it,
        # i.e. the one whose (previous load, this load] window holds it (an as-of join).
        "follow_churn_per_load": f"""
            with events as ({events}),
            loads as (
                select load_id, inserted_at as loaded_at,
                       lag(inserted_at) over (order by inserted_at, load_id) as previous_at
                from {src["_dlt_loads"]} l where status = 0),
            per_load as (
                select l.load_id, sum(e.added) as added, sum(e.removed) as removed
                from events e join loads l
                  on e.observed_at <= l.loaded_at and (l.previous_at is null or e.observed_at > l.previous_at)
                group by l.load_id)
            select l.load_id, l.loaded_at, cast(coalesce(p.added, 0) as bigint) as added,
                   cast(coalesce(p.removed, 0) as bigint) as removed,
                   cast(coalesce(p.added, 0) - coalesce(p.removed, 0) as bigint) as net
            from loads l left join per_load p on p.load_id = l.load_id order by l.loaded_at""",
        # age: time since the task was last seen whole (last ok fetch, else last try), the
        # measure ``--stale-after`` uses.
        "task_last_fetch": f"""
            select task_id, status, error_code, error_msg, follower_count, user_id_type, fetched_at,
                   last_ok_at, now() - coalesce(last_ok_at, fetched_at) as age, tenant_key
            from {src["task_fetch_status"]} s""",
        # Same rule as ``--stale-after``: invalid ids and deleted tasks are never due again.
        "stale_tasks": f"""
            select * from {view("task_last_fetch")} f
            where status not in ({never_due}) and age > {stale_after}
            order by age desc, tenant_key, task_id""",
        "load_health": f"""
            with known(status_order, status) as (values {statuses}),
            found as (
                select status from known union select distinct status from {view("task_last_fetch")} t)
            select s.status, count(f.task_id) as tasks,
                   count(f.task_id) filter (where exists (select 1 from {view("stale_tasks")} st
                       where st.tenant_key = f.tenant_key and st.task_id = f.task_id)) as stale_tasks,
                   max(f.fetched_at) as last_fetched_at
            from found s left join known k on k.status = s.status
            left join {view("task_last_fetch")} f on f.status = s.status
            group by s.status, k.status_order order by coalesce(k.status_order, 99), s.status""",
    }
