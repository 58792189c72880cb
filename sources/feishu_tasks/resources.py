"""The dlt resources: one hidden fetch, and one transformer per table of the registry.

``fetch_followers`` runs the fetch (the scheduler in its thread) and yields what it produces,
the ``FetchItem``s of ``items``. It is not selected, so it loads nothing itself; each table of
``tables.SOURCE_TABLES`` is a transformer over it, made in one loop, so
``feishu_tasks(...).with_resources("task_followers")`` loads only that table and
``dlt pipeline … info`` names every table. dlt hands each item to every selected transformer
(no copy), and each keeps the kind its table is made of (``FEEDS``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeAlias, TypeVar

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.destination.exceptions import SqlClientNotAvailable
from dlt.common.normalizers.json.relational import DataItemNormalizer
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable
from dlt.sources import DltResource

from .arrow_columns import repeated_string
from .bridge import iterate_in_thread
from .client import ClientSettings
from .control import RunControl
from .items import (
    LIST_OK,
    DiscoveredTasks,
    DiscoveryDone,
    FetchItem,
    OutcomeBatch,
    TasklistDone,
    TasklistsListed,
)
from .journal import Journal, TaskChange, latest_per_task
from .known_tasks import ONLY_AT_MOST, previous_last_ok, read_known_tasks
from .listings import KnownTasklists
from .rows import (
    followers_table,
    id_list_table,
    status_table,
    task_row,
    tasklist_row,
    tasklist_status_row,
    tasklist_task_rows,
)
from .scheduler import FetchPlan, FetchScheduler
from .settings import STATUS_FAILED
from .tables import COMMON_COLUMNS, SOURCE_TABLES, TOMBSTONE, Table
from .tenant_column import add_tenant_key

CURSOR_KEY = "discover"
JOURNAL_KEY = "journal"  # source state: {"position": the last journal position this dataset loaded}
MAX_REQUEUES = 3  # loads that may fail to read a changed task before the stale sweep is left to it

Rows: TypeAlias = Any  # an Arrow table, or a list of row dicts (pyarrow has no type hints)


class FollowerFetch:
    """One run's fetch, handed to dlt in one or more parts.

    Each evaluation of ``fetch_followers`` takes the next part (``RunInputs.rows_per_part``
    rows, or everything) while the fetch goes on in the background; ``RunReport.finished``
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
        journal_path: str | None = None,
    ) -> None:
        self.plan, self.settings, self.control = plan, settings, control
        self.lookback_seconds, self.full_refresh = int(lookback_seconds), full_refresh
        self.stale_after = stale_after
        self.journal = JournalReading(journal_path, settings.tenant_key) if journal_path else None
        self._items: Iterator[FetchItem] | None = None
        self.previous_ok: Mapping[str, datetime] = {}
        self.previous_list_ok: Mapping[str, datetime] = {}
        self.keeps_tombstones = True
        # Values of the registry's common columns, the same for every row of this fetch.
        self.common_values: dict[str, Any] = {}

    def _start(self) -> Iterator[FetchItem]:
        """Read what the destination knows and the discover cursor, then start the fetch thread."""
        pipeline, plan = dlt.current.pipeline(), self.plan
        dry_run = self.control.inputs.dry_run
        # per task, on disk (ledger.py): a failure keeps its last_ok_at; --max-requests admits whole
        # tasks and the display counts what is left (pages); the stale sweep
        tenant = self.settings.tenant_key
        if not dry_run or tenant is not None:  # a dataset from before tenant_key: the column first
            _add_tenant_key(pipeline)
        if self.journal is not None:
            plan.changed = self.journal.start(pipeline.pipeline_name, dry_run=self.control.inputs.dry_run)
        with_lists = plan.all_tasklists and not dry_run
        known = read_known_tasks(
            pipeline,
            self.stale_after,
            with_last_ok=not dry_run,
            with_lists=with_lists,
            tenant_key=tenant,
            only=_only_tasks(plan),
        )
        self.previous_ok, plan.expected_pages = known.last_ok, known.pages
        if self.stale_after is not None:
            plan.sweep_task_ids = known.sweep
        if plan.reads_tasklists and not dry_run:  # one row per list: a dict is fine
            self.previous_list_ok = previous_last_ok(
                pipeline, "tasklist_fetch_status", "tasklist_guid", tenant_key=tenant
            )
        if with_lists:  # the lists read before: one no longer visible is said so, its tasks read again
            plan.known_tasklists = KnownTasklists(list(self.previous_list_ok), known.tasks_of_list)
        self.keeps_tombstones = _destination_merges()
        cursor = _discover_cursor()
        if plan.discover and not self.full_refresh and cursor.get("max_update_time"):
            plan.discover_since = max(0, int(cursor["max_update_time"]) - self.lookback_seconds)
        scheduler = FetchScheduler(plan, self.settings, self.control)
        return iterate_in_thread(scheduler.run)

    def next_part(self) -> Iterator[FetchItem]:
        """The fetch's items, up to one part's worth of rows."""
        if self._items is None:
            self._items = self._start()
        rows = 0
        part = self.control.inputs.rows_per_part
        for item in self._items:
            if isinstance(item, DiscoveryDone):
                self._advance_cursor(item)
                continue
            yield item
            if isinstance(item, OutcomeBatch):
                if self.journal is not None:
                    self.journal.note(item)
                rows += item.rows
                if part and rows >= part:
                    return  # the rest goes into the next part
        if self.journal is not None and not self.control.inputs.dry_run:
            self.journal.finish(stopped=self.control.inputs.stop.is_set())
        self.control.report.finished = True

    def _advance_cursor(self, done: DiscoveryDone) -> None:
        """Only after a complete listing: a cut-short one may have missed tasks."""
        if done.complete and done.max_update_time and not self.control.inputs.dry_run:
            cursor = dlt.current.source_state().setdefault(CURSOR_KEY, {})
            cursor["max_update_time"] = max(int(cursor.get("max_update_time", 0)), done.max_update_time)

    def loadable(self, table: Table, rows: Rows) -> Rows:
        """``rows`` as loaded: tombstones only where the destination merges, common columns added,
        and ``_dlt_load_id`` on Arrow tables (dlt adds it to Python rows, not to Arrow tables,
        except through a global normalize setting)."""
        if isinstance(rows, pa.Table):
            if table.tombstones and not self.keeps_tombstones:
                rows = rows.filter(pc.invert(rows[TOMBSTONE]))
            for position, (name, value) in enumerate(self.common_values.items()):
                column = repeated_string(value, rows.num_rows)  # not pa.array: pandas (arrow_columns)
                rows = rows.add_column(position, pa.field(name, pa.string(), nullable=False), column)
            return _with_load_id(rows)
        if table.tombstones and not self.keeps_tombstones:
            rows = [row for row in rows if not row[TOMBSTONE]]
        # first for the column order, last so that a field of the same name in a task object
        # (the listing's objects are stored as sent) never puts a row in another tenant
        common = self.common_values
        return [common | row | common for row in rows] if common else rows


def _only_tasks(plan: FetchPlan) -> Collection[str] | None:
    """The tasks a run reads when they are known before it starts (given ids and the journal's
    marks, nothing listed or discovered): ``follow``'s micro-batch reads what it knows of them only."""
    if plan.discover or plan.reads_tasklists or not isinstance(plan.task_ids, Collection):
        return None
    if len(plan.task_ids) + len(plan.changed) > ONLY_AT_MOST:  # a big list: never copied into a set
        return None
    return {*plan.task_ids, *plan.changed}


class JournalReading:
    """The changes a load reads from the change journal, and the position it moves on to.

    The position lives in the source's dlt state, which commits with the load: a run killed at
    any moment reads the same changes again, never skips one. At the start, the position the
    destination holds is acknowledged to the journal (which prunes what every consumer loaded).
    The position moves only when every marked task was handed to dlt in a run not asked to stop;
    tasks the run could not finish (a request cap, a failure) are marked again first, a few times.
    """

    def __init__(self, path: str, tenant_key: str | None = None) -> None:
        self.path = path
        self.tenant_key = tenant_key  # a store app's tenant reads its own tenant's changes only
        self.changed: dict[str, TaskChange] = {}
        self.finished_ids: set[str] = set()
        self.failed_ids: set[str] = set()
        self.end = 0

    def start(self, consumer: str, dry_run: bool) -> dict[str, TaskChange]:
        state = dlt.current.source_state().setdefault(JOURNAL_KEY, {})
        position = int(state.get("position", 0))
        with Journal(self.path) as journal:
            if not dry_run:
                journal.acknowledge(consumer, position)
            entries = journal.changes_after(position, self.tenant_key)
        self.end = entries[-1].position if entries else position
        self.changed = latest_per_task(entries)
        return self.changed

    def note(self, batch: OutcomeBatch) -> None:
        for outcome in batch.outcomes:
            if outcome.task_id in self.changed:
                self.finished_ids.add(outcome.task_id)
                if outcome.status == STATUS_FAILED:
                    self.failed_ids.add(outcome.task_id)

    def finish(self, stopped: bool) -> None:
        """Move the position past what was read (marking again what could not be finished)."""
        if stopped:
            return  # the next run reads all of them again
        unread = [c for task, c in self.changed.items() if task not in self.finished_ids]
        retry = [self.changed[task] for task in self.failed_ids if self.changed[task].attempts < MAX_REQUEUES]
        if unread or retry:
            with Journal(self.path) as journal:
                journal.requeue([*unread, *retry], "requeued")
        dlt.current.source_state().setdefault(JOURNAL_KEY, {})["position"] = self.end


def _discover_cursor() -> dict[str, Any]:
    """The discover cursor in the source's state (before 0.2 it lived in the resource's state)."""
    state = dlt.current.source_state()
    legacy = state.get("resources", {}).get("followers", {}).get(CURSOR_KEY, {})
    return dict(state.get(CURSOR_KEY) or legacy)


def _add_tenant_key(pipeline: dlt.Pipeline) -> None:
    """``tenant_key`` added to a dataset loaded before it existed (see ``tenant_column``)."""
    if pipeline.destination is None:
        return
    try:
        with pipeline.sql_client() as client:
            if client.has_dataset():
                add_tenant_key(client)
    except SqlClientNotAvailable:  # a destination without SQL: no keys to keep
        return


def _destination_merges() -> bool:
    """Whether the destination runs our merge; a filesystem bucket appends instead.

    Where dlt falls back to append, a tombstone row would be loaded as data: leave them out.
    """
    destination = dlt.current.pipeline().destination
    if destination is None:
        return True
    return "delete-insert" in destination.capabilities().supported_merge_strategies


def _with_load_id(table: pa.Table) -> pa.Table:
    try:
        load_id = dlt.current.load_package_state()["load_id"]
    except CurrentLoadPackageStateNotAvailable:  # iterated outside a pipeline
        return table
    return table.append_column("_dlt_load_id", repeated_string(load_id, table.num_rows))


# ---------------------------------------------------------------------------- what each table is made of
ItemT = TypeVar("ItemT", OutcomeBatch, DiscoveredTasks, TasklistsListed, TasklistDone)


@dataclass(frozen=True)
class Feed(Generic[ItemT]):
    """The item kind a table is made of, and how its rows are made from one such item (None: none)."""

    takes: type[ItemT]
    rows: Callable[[ItemT, FollowerFetch], Rows | None]


def _tasklist_tasks(item: TasklistDone, fetch: FollowerFetch) -> Rows | None:
    """Only a list read whole replaces its tasks: a failed read keeps what was loaded."""
    outcome = item.outcome
    return tasklist_task_rows(outcome.guid, outcome.tasks) if outcome.status == LIST_OK else None


FEEDS: dict[str, Feed[Any]] = {
    "task_followers": Feed(
        OutcomeBatch, lambda item, fetch: followers_table(item.outcomes, fetch.plan.user_id_type)
    ),
    "task_followers__id_list": Feed(OutcomeBatch, lambda item, fetch: id_list_table(item.outcomes)),
    "task_fetch_status": Feed(
        OutcomeBatch,
        lambda item, fetch: status_table(item.outcomes, fetch.plan.user_id_type, fetch.previous_ok),
    ),
    "tasks": Feed(DiscoveredTasks, lambda item, fetch: [task_row(task) for task in item.tasks]),
    "tasklists": Feed(TasklistsListed, lambda item, fetch: [tasklist_row(tl) for tl in item.tasklists]),
    "tasklist_tasks": Feed(TasklistDone, _tasklist_tasks),
    "tasklist_fetch_status": Feed(
        TasklistDone, lambda item, fetch: [tasklist_status_row(item.outcome, fetch.previous_list_ok)]
    ),
}


def _table_resource(table: Table, fetch: FollowerFetch, fetch_followers: DltResource) -> DltResource:
    """The transformer that makes ``table`` from the items of its kind."""
    feed = FEEDS[table.name]

    def make_rows(item: FetchItem) -> Iterator[Rows]:
        if isinstance(item, feed.takes) and (rows := feed.rows(item, fetch)) is not None:
            yield fetch.loadable(table, rows)

    make_rows.__doc__ = table.meaning
    return dlt.transformer(data_from=fetch_followers, **table.dlt_hints())(make_rows)


def propagate_common_columns(schema: dlt.Schema) -> None:
    """dlt's child tables (``tasks__collaborators``, any ``<table>__<list>``) get the common columns.

    dlt links a child row to its parent by ``_dlt_parent_id`` / ``_dlt_root_id``, but a warehouse
    holding every tenant filters each table by ``tenant_key``. dlt's relational normalizer copies
    columns of a root row into all its nested rows when its ``propagation`` config names them.
    """
    common = {column.name: column.name for column in COMMON_COLUMNS}
    DataItemNormalizer.update_normalizer_config(schema, {"propagation": {"root": common}})  # type: ignore[typeddict-item]


def follower_resources(fetch: FollowerFetch) -> list[DltResource]:
    """The hidden fetch and one transformer per table of the registry."""

    @dlt.resource(name="fetch_followers", selected=False)
    def fetch_followers() -> Iterator[FetchItem]:
        yield from fetch.next_part()

    return [fetch_followers, *(_table_resource(table, fetch, fetch_followers) for table in SOURCE_TABLES)]
