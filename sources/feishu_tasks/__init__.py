"""dlt source for Feishu / Lark task followers.

Data path: task ids (given, or discovered by listing tasks) → ``fetcher`` (concurrent httpx
client, paced under the quota) → ``followers`` (pages of one task) → ``rows`` (Arrow tables)
→ the ``followers`` resource below, which loads four tables:

- ``task_followers``: who follows each successfully fetched task now (merge on ``task_id``:
  a fetch replaces that task's follower set, tasks not fetched are untouched);
- ``task_followers__id_list``: the rare ``id_list`` of a follower, linked by ``_dlt_parent_id``;
- ``task_fetch_status``: the latest outcome per task (ok, invalid_task, no_permission, failed);
- ``tasks``: task objects, when ``discover`` lists them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import dlt
from dlt.common.typing import TSecretStrValue
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources import DltResource

from .errors import FatalError
from .fetcher import ClientSettings, DiscoveredTasks, DiscoveryDone, FetchPlan, fetch_outcomes
from .followers import TaskOutcome
from .retry import RetryPolicy
from .rows import TOMBSTONE, followers_table, id_list_table, status_table, task_row
from .settings import (
    DEFAULT_MAX_LISTING_PAGES,
    DEFAULT_MAX_LISTING_SECONDS,
    DEFAULT_MAX_PAGES_PER_TASK,
    DEFAULT_MAX_RPM,
    DEFAULT_MAX_RPS,
    DEFAULT_MAX_SECONDS_PER_TASK,
    DEFAULT_TIMEOUT_SECONDS,
    FEISHU_BASE_URL,
    LARK_BASE_URL,
    STATUS_OK,
    USER_ID_TYPES,
)
from .stats import FetchStats

__all__ = ["feishu_tasks", "FatalError", "FetchStats", "FEISHU_BASE_URL", "LARK_BASE_URL"]

_REPLACE_PER_TASK = {"disposition": "merge", "strategy": "delete-insert"}

# The follower tables' natural keys, (task_id, follower_id[, _dlt_list_idx]), are unique by
# construction (followers.py drops a follower listed twice), so they are declared to dlt as a
# merge key on task_id only. Declaring the primary key too makes dlt's merge delete with
# "pk match OR merge-key match", which DuckDB cannot hash-join: re-loading 1M rows took 4.7 s
# and 2.0 GB RSS, against 1.7 s and 0.5 GB with the merge key alone (bench/load_only.py). It
# would also deduplicate with a window function that the data does not need.
FOLLOWERS_HINTS = dlt.mark.make_hints(
    table_name="task_followers",
    write_disposition=_REPLACE_PER_TASK,
    merge_key="task_id",
    columns={TOMBSTONE: {"data_type": "bool", "hard_delete": True}},
)
ID_LIST_HINTS = dlt.mark.make_hints(
    table_name="task_followers__id_list",
    write_disposition=_REPLACE_PER_TASK,
    merge_key="task_id",
    columns={TOMBSTONE: {"data_type": "bool", "hard_delete": True}},
)
STATUS_HINTS = dlt.mark.make_hints(
    table_name="task_fetch_status",
    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    primary_key="task_id",
)
TASKS_HINTS = dlt.mark.make_hints(
    table_name="tasks",
    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    primary_key="id",
)


@dlt.source(name="feishu_tasks")
def feishu_tasks(
    task_ids: Sequence[str] = (),
    discover: bool = False,
    discover_lookback_seconds: int = 86_400,
    full_refresh: bool = False,
    sweep_task_ids: Sequence[str] = (),
    max_requests: int | None = None,
    expected_pages: Mapping[str, int] | None = None,
    dry_run: bool = False,
    rows_per_load: int | None = 500_000,
    base_url: str = FEISHU_BASE_URL,
    app_id: str | None = None,
    app_secret: TSecretStrValue | None = None,
    user_access_token: TSecretStrValue | None = None,
    user_id_type: str = "open_id",
    concurrency: int = 32,
    max_rps: float = DEFAULT_MAX_RPS,
    max_rpm: float = DEFAULT_MAX_RPM,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_pages_per_task: int = DEFAULT_MAX_PAGES_PER_TASK,
    max_seconds_per_task: float = DEFAULT_MAX_SECONDS_PER_TASK,
    max_listing_pages: int = DEFAULT_MAX_LISTING_PAGES,
    max_listing_seconds: float = DEFAULT_MAX_LISTING_SECONDS,
    max_attempts: int = 5,
    backoff_base_seconds: float = 0.5,
    stats: FetchStats | None = None,
) -> DltResource:
    """Followers of the given (and, with ``discover``, all visible) tasks.

    ``discover`` is incremental: it remembers (in dlt state) the newest task ``update_time``
    it saw and next time lists only tasks created from ``discover_lookback_seconds`` before
    that (the list endpoint filters on create time only); ``full_refresh`` lists everything.
    ``sweep_task_ids`` are fetched after the others, ``max_requests`` caps the run's API
    calls (a task starts while its ``expected_pages``, 1 by default, fit), and ``dry_run``
    lists the tasks the run would fetch in ``stats.planned``. ``rows_per_load`` cuts a big run
    into several dlt loads (run the pipeline until ``stats.finished``; 0 = one load).

    Every argument can come from dlt config: ``[feishu_tasks]`` in
    ``.dlt/config.toml`` / ``.dlt/secrets.toml`` or env vars such as
    ``SOURCES__FEISHU_TASKS__APP_ID``. ``max_rps`` / ``max_rpm`` of 0 switch pacing off.
    ``timeout_seconds`` is each request's whole deadline; a task still paging past
    ``max_pages_per_task`` / ``max_seconds_per_task`` fails (the listing: ``max_listing_*``).
    """
    # Arrow tables skip dlt's row normalizer, which is what adds `_dlt_load_id`; ask the Arrow
    # path to add it too, so every table says which load wrote each row.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    if user_id_type not in USER_ID_TYPES:
        raise FatalError(f"user_id_type must be one of {', '.join(USER_ID_TYPES)}, not {user_id_type!r}")
    settings = ClientSettings(
        base_url=base_url.rstrip("/"),
        app_id=app_id,
        app_secret=app_secret,
        user_access_token=user_access_token,
        concurrency=max(1, int(concurrency)),
        max_rps=max_rps or None,
        max_rpm=max_rpm or None,
        timeout_seconds=timeout_seconds,
        max_pages_per_task=max_pages_per_task,
        max_seconds_per_task=max_seconds_per_task,
        max_listing_pages=max_listing_pages,
        max_listing_seconds=max_listing_seconds,
        retry=RetryPolicy(max_attempts=max(1, int(max_attempts)), backoff_base_seconds=backoff_base_seconds),
    )
    plan = FetchPlan(
        list(task_ids),
        user_id_type,
        discover=discover,
        sweep_task_ids=list(sweep_task_ids),
        max_requests=max_requests,
        expected_pages=dict(expected_pages or {}),
        dry_run=dry_run,
    )
    if rows_per_load:  # a load ends between batches: keep batches smaller than a load
        plan.batch_rows = max(1, min(plan.batch_rows, int(rows_per_load)))
    stream = _FollowerStream(
        plan, settings, stats or FetchStats(), discover_lookback_seconds, full_refresh, rows_per_load
    )

    def followers() -> Iterator[Any]:
        yield from stream.next_load()

    return dlt.resource(followers, name="followers", standalone=False)


class _FollowerStream:
    """One run's fetch, loaded by dlt in one or more loads of about ``rows_per_load`` rows.

    A sweep of a big tenant fetches for hours at the quota; in parts, a run killed on the way
    keeps what it already loaded, and each merge stays a bounded size. Each extraction of the
    ``followers`` resource takes the next part while the fetch goes on in the background;
    ``stats.finished`` tells the runner when there is nothing left.
    """

    def __init__(
        self,
        plan: FetchPlan,
        settings: ClientSettings,
        stats: FetchStats,
        lookback_seconds: int,
        full_refresh: bool,
        rows_per_load: int | None,
    ) -> None:
        self.plan, self.settings, self.stats = plan, settings, stats
        self.lookback_seconds, self.full_refresh = int(lookback_seconds), full_refresh
        self.rows_per_load = rows_per_load
        self._items: Iterator[Any] | None = None

    def _start(self) -> Iterator[Any]:
        cursor = dlt.current.resource_state().get("discover", {})
        if self.plan.discover and not self.full_refresh and cursor.get("max_update_time"):
            self.plan.discover_since = max(0, int(cursor["max_update_time"]) - self.lookback_seconds)
        return fetch_outcomes(self.plan, self.settings, self.stats)

    def next_load(self) -> Iterator[Any]:
        """Arrow tables (and task dicts) marked with their table, up to one load's worth."""
        if self._items is None:
            self._items = self._start()
        rows = 0
        for item in self._items:
            if isinstance(item, DiscoveryDone):
                self._advance_cursor(item)
                continue
            if isinstance(item, DiscoveredTasks):
                yield dlt.mark.with_hints(
                    [task_row(t) for t in item.tasks], TASKS_HINTS, create_table_variant=True
                )
                continue
            yield from self._tables(item)
            rows += sum(len(outcome.followers) + 1 for outcome in item)
            if self.rows_per_load and rows >= self.rows_per_load:
                return  # the rest goes into the next load
        self.stats.finished = True

    def _advance_cursor(self, done: DiscoveryDone) -> None:
        """Only after a complete listing: a cut-short one may have missed tasks."""
        if done.complete and done.max_update_time and not self.plan.dry_run:
            cursor = dlt.current.resource_state().setdefault("discover", {})
            cursor["max_update_time"] = max(int(cursor.get("max_update_time", 0)), done.max_update_time)

    def _tables(self, outcomes: list[TaskOutcome]) -> Iterator[Any]:
        for outcome in outcomes:
            self.stats.count_outcome(outcome.status, len(outcome.followers))
        user_id_type = self.plan.user_id_type
        yield dlt.mark.with_hints(
            followers_table(outcomes, user_id_type), FOLLOWERS_HINTS, create_table_variant=True
        )
        yield dlt.mark.with_hints(id_list_table(outcomes), ID_LIST_HINTS, create_table_variant=True)
        yield dlt.mark.with_hints(
            status_table(outcomes, user_id_type, _previous_last_ok(outcomes)),
            STATUS_HINTS,
            create_table_variant=True,
        )


def _previous_last_ok(outcomes: Sequence[TaskOutcome]) -> Mapping[str, datetime]:
    """``last_ok_at`` already loaded for the tasks that failed now, so a failure keeps it."""
    failed = [o.task_id for o in outcomes if o.status != STATUS_OK]
    if not failed:
        return {}
    pipeline = dlt.current.pipeline()
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("task_fetch_status")
            placeholders = ", ".join(["%s"] * len(failed))
            rows = client.execute_sql(
                f"select task_id, last_ok_at from {table} where task_id in ({placeholders})", *failed
            )
    except DatabaseUndefinedRelation:  # first load into this dataset: nothing to keep
        return {}
    return {task_id: last_ok for task_id, last_ok in rows or () if last_ok is not None}
