"""The dlt resources: one hidden fetch, one transformer per table.

``fetch_followers`` runs the fetch (the scheduler in its thread) and yields what it produces:
batches of task outcomes and pages of listed tasks. It is not selected, so it loads nothing
itself; each table is a transformer over it, so ``feishu_tasks(...).with_resources(
"task_followers")`` loads only that table, and ``dlt pipeline … info`` names every table.
dlt hands each item of the fetch to every selected transformer (no copy), and each keeps the
kind it makes a table of.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable
from dlt.sources import DltResource

from .bridge import iterate_in_thread
from .client import ClientSettings
from .control import RunControl
from .known_tasks import multi_page_tasks, previous_last_ok, stale_task_ids
from .list_reading import TasklistDone, TasklistsListed
from .rows import (
    TOMBSTONE,
    followers_table,
    id_list_table,
    status_table,
    task_row,
    tasklist_row,
    tasklist_status_row,
    tasklist_task_rows,
)
from .scheduler import DiscoveredTasks, DiscoveryDone, FetchPlan, FetchScheduler, OutcomeBatch
from .task_lists import LIST_OK

# A fetch replaces the follower set of every task it fetched, and leaves the others alone.
REPLACE_PER_TASK: Any = {"disposition": "merge", "strategy": "delete-insert"}
# The follower tables' natural keys, (task_id, follower_id[, _dlt_list_idx]), are unique by
# construction (followers.py drops a follower listed twice), so they are declared to dlt as a
# merge key on task_id only. Declaring the primary key too makes dlt's merge delete with
# "pk match OR merge-key match", which DuckDB cannot hash-join: re-loading 1M rows took 4.7 s
# and 2.0 GB RSS, against 1.7 s and 0.5 GB with the merge key alone (bench/load_only.py).
TOMBSTONE_COLUMN: Any = {TOMBSTONE: {"data_type": "bool", "hard_delete": True}}

CURSOR_KEY = "discover"


class FollowerFetch:
    """One run's fetch, handed to dlt in one or more parts.

    Each evaluation of ``fetch_followers`` takes the next part (``RunControl.rows_per_part``
    rows, or everything) while the fetch goes on in the background; ``control.finished``
    tells a runner that loads in parts when nothing is left.
    """

    def __init__(
        self,
        plan: FetchPlan,
        settings: ClientSettings,
        control: RunControl,
        lookback_seconds: int,
        full_refresh: bool,
        stale_after: timedelta | None = None,
    ) -> None:
        self.plan, self.settings, self.control = plan, settings, control
        self.lookback_seconds, self.full_refresh = int(lookback_seconds), full_refresh
        self.stale_after = stale_after
        self._items: Iterator[Any] | None = None
        self.previous_ok: Mapping[str, datetime] = {}
        self.previous_list_ok: Mapping[str, datetime] = {}
        self.keeps_tombstones = True

    def _start(self) -> Iterator[Any]:
        """Read what the destination knows and the discover cursor, then start the fetch thread."""
        pipeline, control = dlt.current.pipeline(), self.control
        if not control.dry_run:
            self.previous_ok = previous_last_ok(pipeline)
            if self.plan.reads_tasklists:
                self.previous_list_ok = previous_last_ok(pipeline, "tasklist_fetch_status", "tasklist_guid")
        if self.stale_after is not None and not control.sweep_task_ids:
            control.sweep_task_ids = stale_task_ids(pipeline, self.stale_after)
        if not control.expected_pages:  # --max-requests admits whole tasks; the display counts what is left
            control.expected_pages = multi_page_tasks(pipeline)
        self.keeps_tombstones = _destination_merges()
        cursor = _discover_cursor()
        if self.plan.discover and not self.full_refresh and cursor.get("max_update_time"):
            self.plan.discover_since = max(0, int(cursor["max_update_time"]) - self.lookback_seconds)
        scheduler = FetchScheduler(self.plan, self.settings, self.control)
        return iterate_in_thread(scheduler.run)

    def next_part(self) -> Iterator[Any]:
        """Outcome batches and listed task pages, up to one part's worth of rows."""
        if self._items is None:
            self._items = self._start()
        rows = 0
        part = self.control.rows_per_part
        for item in self._items:
            if isinstance(item, DiscoveryDone):
                self._advance_cursor(item)
                continue
            yield item
            if isinstance(item, OutcomeBatch):
                rows += item.rows
                if part and rows >= part:
                    return  # the rest goes into the next part
        self.control.finished = True

    def _advance_cursor(self, done: DiscoveryDone) -> None:
        """Only after a complete listing: a cut-short one may have missed tasks."""
        if done.complete and done.max_update_time and not self.control.dry_run:
            cursor = dlt.current.source_state().setdefault(CURSOR_KEY, {})
            cursor["max_update_time"] = max(int(cursor.get("max_update_time", 0)), done.max_update_time)


def _discover_cursor() -> dict[str, Any]:
    """The discover cursor in the source's state (before 0.2 it lived in the resource's state)."""
    state = dlt.current.source_state()
    legacy = state.get("resources", {}).get("followers", {}).get(CURSOR_KEY, {})
    return dict(state.get(CURSOR_KEY) or legacy)


def _destination_merges() -> bool:
    """Whether the destination runs our merge; a filesystem bucket appends instead.

    Where dlt falls back to append, a tombstone row would be loaded as data: leave them out.
    """
    destination = dlt.current.pipeline().destination
    if destination is None:
        return True
    return "delete-insert" in destination.capabilities().supported_merge_strategies


def _with_load_id(table: pa.Table) -> pa.Table:
    """Add ``_dlt_load_id``: dlt adds it to Python rows, not to Arrow tables.

    (dlt can add it to Arrow tables too, but only through a global normalize setting.)
    """
    try:
        load_id = dlt.current.load_package_state()["load_id"]
    except CurrentLoadPackageStateNotAvailable:  # iterated outside a pipeline
        return table
    return table.append_column("_dlt_load_id", pa.array([load_id] * table.num_rows, pa.string()))


def _loadable(table: pa.Table, fetch: FollowerFetch) -> pa.Table:
    if not fetch.keeps_tombstones:
        table = table.filter(pc.invert(table[TOMBSTONE]))
    return _with_load_id(table)


def _loadable_rows(rows: list[dict[str, Any]], fetch: FollowerFetch) -> list[dict[str, Any]]:
    return rows if fetch.keeps_tombstones else [row for row in rows if not row[TOMBSTONE]]


TIMESTAMP: Any = {"data_type": "timestamp", "timezone": True}
TASKLIST_COLUMNS: Any = {
    "guid": {"data_type": "text", "nullable": False},
    **{name: {"data_type": "text"} for name in ("name", "creator_id", "owner_id", "url")},
    **{name: dict(TIMESTAMP) for name in ("created_at", "updated_at", "archived_at")},
}
TASKLIST_TASK_COLUMNS: Any = {
    **TOMBSTONE_COLUMN,
    "tasklist_guid": {"data_type": "text", "nullable": False},
    "task_guid": {"data_type": "text", "nullable": False},
    "summary": {"data_type": "text"},
    **{name: dict(TIMESTAMP) for name in ("completed_at", "due_at", "start_at")},
    **{name: {"data_type": "bool"} for name in ("due_is_all_day", "start_is_all_day")},
    "subtask_count": {"data_type": "bigint"},
}
TASKLIST_STATUS_COLUMNS: Any = {
    "tasklist_guid": {"data_type": "text", "nullable": False},
    "status": {"data_type": "text", "nullable": False},
    **{name: {"data_type": "bigint"} for name in ("task_count", "pages", "error_code")},
    **{name: {"data_type": "text"} for name in ("error_msg", "log_id")},
    **{name: dict(TIMESTAMP) for name in ("fetched_at", "last_ok_at")},
}


def tasklist_resources(fetch_followers: DltResource, fetch: FollowerFetch) -> list[DltResource]:
    """The task-list tables (task v2), over the same fetch."""

    @dlt.transformer(
        data_from=fetch_followers,
        name="tasklists",
        write_disposition=REPLACE_PER_TASK,
        primary_key="guid",
        columns=TASKLIST_COLUMNS,
    )
    def tasklists(item: Any) -> Iterator[list[dict[str, Any]]]:
        """The task lists the credentials can see (those asked for, or all)."""
        if isinstance(item, TasklistsListed):
            yield [tasklist_row(tasklist) for tasklist in item.tasklists]

    @dlt.transformer(
        data_from=fetch_followers,
        name="tasklist_tasks",
        write_disposition=REPLACE_PER_TASK,
        merge_key="tasklist_guid",
        columns=TASKLIST_TASK_COLUMNS,
    )
    def tasklist_tasks(item: Any) -> Iterator[list[dict[str, Any]]]:
        """The tasks of each list read whole, replaced per list (a task moved out leaves it)."""
        if isinstance(item, TasklistDone) and item.outcome.status == LIST_OK:
            outcome = item.outcome
            yield _loadable_rows(tasklist_task_rows(outcome.guid, outcome.tasks), fetch)

    @dlt.transformer(
        data_from=fetch_followers,
        name="tasklist_fetch_status",
        write_disposition=REPLACE_PER_TASK,
        primary_key="tasklist_guid",
        columns=TASKLIST_STATUS_COLUMNS,
    )
    def tasklist_fetch_status(item: Any) -> Iterator[dict[str, Any]]:
        """The latest outcome per list: ok, not_found, no_permission or failed."""
        if isinstance(item, TasklistDone):
            yield tasklist_status_row(item.outcome, fetch.previous_list_ok)

    return [tasklists, tasklist_tasks, tasklist_fetch_status]


def follower_resources(fetch: FollowerFetch) -> list[DltResource]:
    """The hidden fetch and one transformer per table."""
    user_id_type = fetch.plan.user_id_type

    @dlt.resource(name="fetch_followers", selected=False)
    def fetch_followers() -> Iterator[Any]:
        yield from fetch.next_part()

    @dlt.transformer(
        data_from=fetch_followers,
        name="task_followers",
        write_disposition=REPLACE_PER_TASK,
        merge_key="task_id",
        columns=TOMBSTONE_COLUMN,
    )
    def task_followers(item: Any) -> Iterator[pa.Table]:
        """Who follows each successfully fetched task now."""
        if isinstance(item, OutcomeBatch):
            yield _loadable(followers_table(item.outcomes, user_id_type), fetch)

    @dlt.transformer(
        data_from=fetch_followers,
        name="task_followers__id_list",
        write_disposition=REPLACE_PER_TASK,
        merge_key="task_id",
        columns=TOMBSTONE_COLUMN,
    )
    def task_followers_id_list(item: Any) -> Iterator[pa.Table]:
        """The rare ``id_list`` of a follower, linked to its row by ``_dlt_parent_id``."""
        if isinstance(item, OutcomeBatch):
            yield _loadable(id_list_table(item.outcomes), fetch)

    @dlt.transformer(
        data_from=fetch_followers,
        name="task_fetch_status",
        write_disposition=REPLACE_PER_TASK,
        primary_key="task_id",
    )
    def task_fetch_status(item: Any) -> Iterator[pa.Table]:
        """The latest outcome per task; a failure keeps the last successful fetch's time."""
        if isinstance(item, OutcomeBatch):
            yield _with_load_id(status_table(item.outcomes, user_id_type, fetch.previous_ok))

    @dlt.transformer(
        data_from=fetch_followers,
        name="tasks",
        write_disposition=REPLACE_PER_TASK,
        primary_key="id",
    )
    def tasks(item: Any) -> Iterator[list[dict[str, Any]]]:
        """Task objects from the listing (``discover``)."""
        if isinstance(item, DiscoveredTasks):
            yield [task_row(task) for task in item.tasks]

    return [
        fetch_followers,
        task_followers,
        task_followers_id_list,
        task_fetch_status,
        tasks,
        *tasklist_resources(fetch_followers, fetch),
    ]
