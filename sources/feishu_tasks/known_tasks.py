"""What the destination already holds about tasks, read once when a fetch starts.

A task that fails now must keep the ``last_ok_at`` of its last successful fetch, but the merge
replaces its whole ``task_fetch_status`` row. So the source reads the previous values before
it fetches anything: once, when nothing fetched can be lost if the destination is busy, rather
than in the middle of the extraction. Written in SQL that any dlt SQL destination runs (the
``max`` also reads the append-only copies a destination without merge keeps).
"""

from __future__ import annotations

import logging
from datetime import datetime

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity, SqlClientNotAvailable
from dlt.destinations.exceptions import DatabaseUndefinedRelation

STATUS_TABLE = "task_fetch_status"

log = logging.getLogger("feishu_tasks")


def previous_last_ok() -> dict[str, datetime]:
    """``last_ok_at`` per task from the active pipeline's destination; empty when there is none yet."""
    pipeline = dlt.current.pipeline()
    if pipeline.destination is None:  # extracting without a destination: nothing to read
        return {}
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(STATUS_TABLE)
            rows = client.execute_sql(
                f"select task_id, max(last_ok_at) from {table} where last_ok_at is not null group by task_id"
            )
    except (DatabaseUndefinedRelation, DestinationUndefinedEntity):  # nothing loaded yet
        return {}
    except SqlClientNotAvailable:  # a destination without SQL: nothing to keep
        log.warning("the destination cannot be queried: a task that fails keeps no last_ok_at")
        return {}
    return {task_id: last_ok for task_id, last_ok in rows or ()}
