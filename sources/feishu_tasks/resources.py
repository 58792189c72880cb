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
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable
from dlt.sources import DltResource

from .bridge import iterate_in_thread
from .client import ClientSettings
from .control import RunControl
from .known_tasks import previous_last_ok
from .rows import TOMBSTONE, followers_table, id_list_table, status_table, task_row
from .scheduler import DiscoveredTasks, DiscoveryDone, FetchPlan, FetchScheduler, OutcomeBatch

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
    ) -> None:
        self.plan, self.settings, self.control = plan, settings, control
        self.lookback_seconds, self.full_refresh = int(lookback_seconds), full_refresh
        self._items: Iterator[Any] | None = None
        self.previous_ok: Mapping[str, datetime] = {}
        self.keeps_tombstones = True

    def _start(self) -> Iterator[Any]:
        """Read what the destination knows and the discover cursor, then start the fetch thread."""
        self.previous_ok = {} if self.control.dry_run else previous_last_ok()
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

    return [fetch_followers, task_followers, task_followers_id_list, task_fetch_status, tasks]
