"""What the destination already holds about tasks, read once when a fetch starts.

- ``last_ok_at``: a task (or list) that fails now keeps the time of its last successful fetch,
  but the merge replaces its whole status row, so the previous values are read first.
- The stale sweep: known tasks not seen whole for a while, oldest first (``stale_after``).
- What each known task cost last time (its follower count), so ``max_requests`` admits whole tasks.

All of it is read before the first request, when nothing fetched can be lost if the destination
is busy, and in SQL that any dlt SQL destination runs, through dlt's SQL client (the ``max``
also reads the append-only copies that a destination without merge keeps). A destination
without SQL, or one that holds nothing yet, knows nothing. The per-task answers are streamed,
a chunk at a time, into ``ledger.KnownTasks`` (on disk): at 1,000,000 tasks they took ~250 MB
as Python objects. A run that reads a known, small set of tasks (``follow``'s micro-batch of the
tasks the change journal marks) reads their rows only (``only``): the whole table costs in
proportion to the tenant (~0.7 s a batch at 100,000 tasks), the marked rows do not.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity, SqlClientNotAvailable
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from .ledger import CHUNK, KnownTasks
from .settings import FOLLOWERS_PAGE_SIZE, NEVER_DUE
from .tenant_column import tenant_condition

STATUS_TABLE = "task_fetch_status"
# The last time a task was seen whole, or else last tried. Malformed, unknown and deleted tasks
# are never due again: fetching them cannot change anything.
LAST_SEEN = "coalesce(last_ok_at, fetched_at)"
SWEEPABLE = "status not in (" + ", ".join(f"'{status}'" for status in NEVER_DUE) + ")"
# In key order: the ledger's tables are keyed by task id, and inserts in key order are appends.
# ``{only}``: nothing, or ``and task_id in (%s, …) `` for the tasks a run reads (``_only_rows``).
LAST_OK_SQL = (
    "select {key}, max(last_ok_at) from {table} where last_ok_at is not null and {tenant} "
    "{only}group by {key} order by {key}"
)
# The tasks that needed more than one page last time (the rest need one).
MULTI_PAGE_SQL = (
    "select task_id, max(follower_count) from {table} where follower_count > %s and {tenant} "
    "{only}group by task_id order by task_id"
)
ONLY_AT_MOST = 10_000  # more tasks than this: one scan of the table costs less than the lists
ONLY_CHUNK = 1_000  # task ids per query (placeholders per statement stay well under every limit)
STALE_SQL = (
    f"select task_id from {{table}} where {SWEEPABLE} and {LAST_SEEN} < %s and {{tenant}} "
    f"group by task_id order by min({LAST_SEEN}), task_id"
)
LIST_TASKS_SQL = (
    "select tasklist_guid, task_guid from {table} where {tenant} order by tasklist_guid, task_guid"
)

log = logging.getLogger("feishu_tasks")


def query_status(
    pipeline: dlt.Pipeline,
    sql: str,
    *args: Any,
    table_name: str = STATUS_TABLE,
    tenant_key: str | None = None,
) -> list[tuple[Any, ...]]:
    """``sql`` with ``{table}`` = the qualified status table and ``{tenant}`` = the tenant's rows (all
    when ``tenant_key`` is None); no rows when there is none (yet)."""
    if pipeline.destination is None:  # extracting without a destination: nothing to read
        return []
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(table_name)
            query = sql.format(table=table, tenant=tenant_condition(tenant_key))
            return [tuple(row) for row in client.execute_sql(query, *args) or ()]
    except (DatabaseUndefinedRelation, DestinationUndefinedEntity):  # nothing loaded yet
        return []
    except SqlClientNotAvailable:  # a destination without SQL
        log.warning("the destination cannot be queried: no last_ok_at kept, no stale sweep")
        return []


def stream_status(
    pipeline: dlt.Pipeline,
    sql: str,
    *args: Any,
    table_name: str = STATUS_TABLE,
    tenant_key: str | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Like ``query_status``, a chunk of rows at a time instead of all of them at once."""
    if pipeline.destination is None:
        return
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(table_name)
            query = sql.format(table=table, tenant=tenant_condition(tenant_key))
            with client.execute_query(query, *args) as cursor:
                for chunk in cursor.iter_fetch(CHUNK):
                    yield from (tuple(row) for row in chunk)
    except (DatabaseUndefinedRelation, DestinationUndefinedEntity):  # nothing loaded yet
        return
    except SqlClientNotAvailable:  # a destination without SQL
        log.warning("the destination cannot be queried: no last_ok_at kept, no stale sweep")


def read_known_tasks(
    pipeline: dlt.Pipeline,
    stale_after: timedelta | None,
    with_last_ok: bool = True,
    with_lists: bool = False,
    tenant_key: str | None = None,
    only: Collection[str] | None = None,
) -> KnownTasks:
    """Each task's ``last_ok_at``, the pages of the multi-page ones, and the stale sweep, on disk
    (of one tenant's tasks when ``tenant_key`` is given); ``with_lists``: also the tasks of each
    task list (a list no longer visible is read through them). ``only``: the run reads these tasks
    and no others (no sweep, no lists), so only their rows are read when they are few."""
    if only is not None and (len(only) > ONLY_AT_MOST or with_lists or stale_after is not None):
        only = None
    known = KnownTasks()
    try:
        if with_lists:
            known.add_list_tasks(
                stream_status(pipeline, LIST_TASKS_SQL, table_name="tasklist_tasks", tenant_key=tenant_key)
            )
        if with_last_ok:
            known.add_last_ok(_last_ok(pipeline, tenant_key, only))
        known.add_pages(
            (str(task_id), -(-int(count) // FOLLOWERS_PAGE_SIZE))
            for task_id, count in _multi_page(pipeline, tenant_key, only)
        )
        if stale_after is not None:
            stale = stream_status(pipeline, STALE_SQL, _cutoff(stale_after), tenant_key=tenant_key)
            known.add_sweep(row[0] for row in stale)
    except BaseException:
        known.close()
        raise
    return known


def _last_ok(
    pipeline: dlt.Pipeline, tenant_key: str | None, only: Collection[str] | None
) -> Iterator[tuple[Any, ...]]:
    sql = LAST_OK_SQL.replace("{key}", "task_id")
    return _only_rows(pipeline, sql, (), tenant_key, only)


def _multi_page(
    pipeline: dlt.Pipeline, tenant_key: str | None, only: Collection[str] | None
) -> Iterator[tuple[Any, ...]]:
    return _only_rows(pipeline, MULTI_PAGE_SQL, (FOLLOWERS_PAGE_SIZE,), tenant_key, only)


def _only_rows(
    pipeline: dlt.Pipeline,
    sql: str,
    args: tuple[Any, ...],
    tenant_key: str | None,
    only: Collection[str] | None,
) -> Iterator[tuple[Any, ...]]:
    """``sql``'s rows, of every task (``only`` None) or of ``only``'s, a sorted chunk of ids per
    query: each chunk's rows come back in key order, and so do all of them (the ledger appends)."""
    if only is None:
        yield from stream_status(pipeline, sql.replace("{only}", ""), *args, tenant_key=tenant_key)
        return
    ordered = sorted(set(only))
    for start in range(0, len(ordered), ONLY_CHUNK):
        chunk = ordered[start : start + ONLY_CHUNK]
        condition = "and task_id in (" + ", ".join(["%s"] * len(chunk)) + ") "
        yield from stream_status(
            pipeline, sql.replace("{only}", condition), *args, *chunk, tenant_key=tenant_key
        )


def previous_last_ok(
    pipeline: dlt.Pipeline,
    table_name: str = STATUS_TABLE,
    key: str = "task_id",
    tenant_key: str | None = None,
) -> dict[str, datetime]:
    """``last_ok_at`` per ``key`` (``tasklist_fetch_status`` keeps lists' times the same way)."""
    sql = LAST_OK_SQL.format(key=key, table="{table}", tenant="{tenant}", only="")
    rows = query_status(pipeline, sql, table_name=table_name, tenant_key=tenant_key)
    return {str(name): last_ok for name, last_ok in rows}


def _cutoff(stale_after: timedelta) -> datetime:
    return datetime.now(UTC) - stale_after


def count_stale(pipeline: dlt.Pipeline, stale_after: timedelta, tenant_key: str | None = None) -> int:
    """How many known tasks (of the tenant, if given) are stale now (for the summary)."""
    rows = query_status(
        pipeline,
        f"select count(distinct task_id) from {{table}} where {SWEEPABLE} and {LAST_SEEN} < %s "
        "and {tenant}",
        _cutoff(stale_after),
        tenant_key=tenant_key,
    )
    return int(rows[0][0]) if rows else 0


def estimated_requests(
    pipeline: dlt.Pipeline, task_ids: list[str], tenant_key: str | None = None
) -> dict[str, int]:
    """Pages each task needed last time (1 when unknown): the follower endpoint's cost."""
    sql = "select task_id, max(follower_count) from {table} where {tenant} group by task_id"
    known = dict(query_status(pipeline, sql, tenant_key=tenant_key))
    return {task_id: max(1, -(-int(known.get(task_id) or 0) // FOLLOWERS_PAGE_SIZE)) for task_id in task_ids}
