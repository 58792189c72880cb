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


def previous_last_ok(table_name: str = STATUS_TABLE, key: str = "task_id") -> dict[str, datetime]:
    """``last_ok_at`` per ``key`` from a status table at the active pipeline's destination.

    Empty when there is none yet (``tasklist_fetch_status`` keeps lists' times the same way).
    """
    pipeline = dlt.current.pipeline()
    if pipeline.destination is None:  # extracting without a destination: nothing to read
        return {}
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(table_name)
            rows = client.execute_sql(
                f"select {key}, max(last_ok_at) from {table} where last_ok_at is not null group by {key}"
            )
    except (DatabaseUndefinedRelation, DestinationUndefinedEntity):  # nothing loaded yet
        return {}
    except SqlClientNotAvailable:  # a destination without SQL: nothing to keep
        log.warning("the destination cannot be queried: a task that fails keeps no last_ok_at")
        return {}
    return {task_id: last_ok for task_id, last_ok in rows or ()}
