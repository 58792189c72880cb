"""Which known tasks are due again, read from ``task_fetch_status`` in the destination."""

from __future__ import annotations

import re
from datetime import timedelta

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from feishu_tasks.errors import FatalError
from feishu_tasks.settings import FOLLOWERS_PAGE_SIZE

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}

# The last time a task was seen whole, or else last tried. Malformed and unknown ids
# (invalid_task) are never due again: fetching them cannot succeed.
_LAST_SEEN = "coalesce(last_ok_at, fetched_at)"
_SWEEPABLE = "status <> 'invalid_task'"


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``7d``, ``2w`` or plain seconds."""
    match = _DURATION.fullmatch(str(text))
    if not match:
        raise FatalError(f"not a duration: {text!r} (use e.g. 90s, 15m, 6h, 7d)")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def _query(pipeline: dlt.Pipeline, sql: str, *args: object) -> list[tuple]:
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("task_fetch_status")
            return list(client.execute_sql(sql.format(table=table), *args) or [])
    except DatabaseUndefinedRelation:  # nothing loaded yet
        return []


def stale_task_ids(pipeline: dlt.Pipeline, stale_after: timedelta) -> list[str]:
    """Known tasks whose last successful fetch is older than ``stale_after``, oldest first."""
    rows = _query(
        pipeline,
        f"select task_id from {{table}} where {_SWEEPABLE} "
        f"and {_LAST_SEEN} < now() - to_seconds(%s) order by {_LAST_SEEN}, task_id",
        stale_after.total_seconds(),
    )
    return [row[0] for row in rows]


def count_stale(pipeline: dlt.Pipeline, stale_after: timedelta) -> int:
    """How many known tasks are stale now (for the summary)."""
    rows = _query(
        pipeline,
        f"select count(*) from {{table}} where {_SWEEPABLE} and {_LAST_SEEN} < now() - to_seconds(%s)",
        stale_after.total_seconds(),
    )
    return int(rows[0][0]) if rows else 0


def multi_page_tasks(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Known tasks that needed more than one page last time, and how many (the rest need one)."""
    rows = _query(
        pipeline, "select task_id, follower_count from {table} where follower_count > %s", FOLLOWERS_PAGE_SIZE
    )
    return {task_id: -(-int(count) // FOLLOWERS_PAGE_SIZE) for task_id, count in rows}


def estimated_requests(pipeline: dlt.Pipeline, task_ids: list[str]) -> dict[str, int]:
    """Pages each task needed last time (1 when unknown): the follower endpoint's cost."""
    known = dict(_query(pipeline, "select task_id, follower_count from {table}"))
    return {task_id: max(1, -(-int(known.get(task_id) or 0) // FOLLOWERS_PAGE_SIZE)) for task_id in task_ids}
