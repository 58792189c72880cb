"""One run: task ids in, tables out, with the guarantees a scheduler needs.

Order of work: refuse a concurrent run (locks, before anything is touched) → wait, bounded,
for a DuckDB file that a reader holds → finish any load an earlier run left pending → extract,
normalize and load this run in parts, each followed by the history and views → prune dlt's
working folder → summary. A stop request (Ctrl-C, SIGTERM) ends the fetch early; what was
fetched is still loaded.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dlt
import duckdb
from dlt.common.pipeline import LoadInfo, get_dlt_pipelines_dir
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.extract import DltSource

from feishu_tasks import feishu_tasks
from feishu_tasks.control import RunControl, run_control
from feishu_tasks.errors import ConfigError, FatalError
from feishu_tasks.stats import FetchStats
from feishu_tasks.task_ids import read_task_ids_file

from .errors import fatal_errors_as_one_line
from .history import apply_history
from .housekeeping import prune_completed_packages
from .lock import run_lock
from .options import RunOptions
from .post_load import after_load
from .selection import count_stale, estimated_requests, multi_page_tasks, stale_task_ids
from .steps import StepCollector, dlt_log_collector
from .waiting import busy_reason, wait_while_busy

T = TypeVar("T")


@dataclass
class RunResult:
    """What the summary reports."""

    options: RunOptions
    stats: FetchStats
    elapsed_seconds: float
    completed_pending: bool
    load_ids: list[str] = field(default_factory=list)
    stale_after_run: int | None = None
    planned: list[tuple[str, str]] = field(default_factory=list)  # dry run: (task, why)
    planned_requests: dict[str, int] = field(default_factory=dict)  # dry run: task → requests
    step_seconds: dict[str, float] = field(default_factory=dict)  # dlt's steps, summed over loads


def collect_task_ids(options: RunOptions) -> list[str]:
    """Ids from flags, the ids file and the query, in that order (deduplicated later)."""
    ids = list(options.task_ids)
    if options.task_ids_file:
        try:
            ids += read_task_ids_file(options.task_ids_file)
        except OSError as exc:
            raise FatalError(f"cannot read --task-ids-file {options.task_ids_file}: {exc.strerror}") from None
    if options.task_ids_query:
        ids += query_task_ids(options.duckdb_path, options.task_ids_query)
    if not ids and not options.discover and options.stale_after is None:
        raise FatalError(
            "no task ids given: use --task-id, --task-ids-file, --task-ids-query, --discover or --stale-after"
        )
    return ids


def query_task_ids(duckdb_path: str, sql: str) -> list[str]:
    """First column of ``sql`` run on the destination file (e.g. a table another pipeline loaded)."""
    if not Path(duckdb_path).exists():
        raise FatalError(f"--task-ids-query runs on {duckdb_path}, which does not exist yet")
    try:
        with duckdb.connect(duckdb_path, read_only=True) as con:
            rows = con.execute(sql).fetchall()
    except duckdb.Error as exc:
        raise FatalError(f"--task-ids-query failed: {str(exc).splitlines()[0]}") from None
    return [str(row[0]) for row in rows if row and row[0] is not None]


def check_destination(duckdb_path: str, dataset: str) -> None:
    """Open the DuckDB file once, so an unwritable or busy destination stops us before any request."""
    path = Path(duckdb_path)
    if path.stem == dataset:
        raise ConfigError(
            f"the DuckDB file {duckdb_path} is named like the dataset {dataset!r}: DuckDB then cannot tell "
            "the file from the schema; choose another file name (--duckdb) or dataset (--dataset)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        duckdb.connect(str(path)).close()
    except (OSError, duckdb.Error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FatalError(f"cannot write the DuckDB file {duckdb_path}: {reason}") from None


def make_pipeline(
    options: RunOptions, progress: bool, on_step: Callable[[str, bool], None] | None = None
) -> dlt.Pipeline:
    """The dlt pipeline; ``dlt pipeline <name> info`` reads the same working folder.

    ``progress``: dlt's own progress log (``--verbose``); else ``on_step`` hears of dlt's steps.
    """
    collector = dlt_log_collector() if progress else StepCollector(on_step) if on_step else None
    extra: dict[str, Any] = {"progress": collector} if collector else {}
    credentials = DuckDbCredentials(str(Path(options.duckdb_path).resolve()))
    if options.duckdb_memory_limit:
        # DuckDB's default is 80% of RAM, and a merge of a big load takes what it can get
        # (bench case 4: peak RSS 574 MB unbounded, 532 MB at 256MB). Bounded, it spills to disk.
        credentials.global_config = {"memory_limit": options.duckdb_memory_limit}
    pipeline = dlt.pipeline(
        pipeline_name=options.pipeline_name,
        destination=dlt.destinations.duckdb(credentials),
        dataset_name=options.dataset,
        pipelines_dir=options.pipelines_dir or get_dlt_pipelines_dir(),
        **extra,
    )
    # Our runner handles SIGINT/SIGTERM itself (signals.py): the first one stops the fetch and
    # lets the load finish. dlt's own handler would instead abort that load at the first signal.
    pipeline.runtime_config.intercept_signals = False
    return pipeline


def _add_step_times(totals: dict[str, float], pipeline: dlt.Pipeline) -> None:
    """Add the last ``pipeline.run``'s extract/normalize/load times (dlt keeps only the last trace)."""
    trace = pipeline.last_trace
    for step in trace.steps if trace else ():
        if step.step in ("extract", "normalize", "load") and step.started_at and step.finished_at:
            seconds = (step.finished_at - step.started_at).total_seconds()
            totals[step.step] = totals.get(step.step, 0.0) + seconds


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Complete what an earlier run left: its load packages first, then their history.

    dlt's ``run()`` would load pending packages and then skip the new data, so we do it here.
    The views need no refresh for that: they read the tables, and this run's load refreshes them.
    """
    pending = pipeline.has_pending_data
    if pending:
        if pipeline.list_extracted_load_packages():
            pipeline.normalize()
        pipeline.load()
    apply_history(pipeline)
    return pending


class Run:
    """One run's steps, in the order that keeps a scheduled load exact (see the module doc)."""

    def __init__(self, options: RunOptions, control: RunControl, notify: Callable[[str], None]) -> None:
        self.options, self.control, self.notify = options, control, notify
        self.result = RunResult(options, control.stats, 0.0, False)

    def waiting(self, step: Callable[[], T], what: str) -> T:
        """``step()``, waiting (bounded) while another process holds the DuckDB file."""
        return wait_while_busy(
            step, what, self.options.lock_timeout_seconds, self.notify, stopping=self.control.stop.is_set
        )

    def execute(self) -> RunResult:
        options = self.options
        self.waiting(lambda: check_destination(options.duckdb_path, options.dataset), "opening it")
        task_ids = self.waiting(lambda: collect_task_ids(options), "reading task ids from it")
        pipeline = make_pipeline(options, options.verbose and not options.dry_run, self.control.on_step)
        self.result.completed_pending = self.waiting(
            lambda: finish_pending(pipeline), "loading what an earlier run fetched"
        )
        if self.control.stop.is_set():
            return self.result
        self.waiting(lambda: self.plan_sweep(pipeline), "reading which tasks are due")
        with run_control(self.control):
            source = feishu_tasks(
                task_ids=task_ids,
                discover=options.discover,
                full_refresh=options.full_refresh,
                max_requests=options.max_requests,
                **options.source_args,
            )
        if options.dry_run:
            self.dry_run(pipeline, source)
        else:
            while not self.control.finished:  # a big run is loaded in parts (rows_per_load)
                self.load_part(pipeline, source)
            prune_completed_packages(pipeline)
        if (stale_after := options.stale_after) is not None:
            self.result.stale_after_run = self.waiting(
                lambda: count_stale(pipeline, stale_after), "counting stale tasks"
            )
        return self.result

    def plan_sweep(self, pipeline: dlt.Pipeline) -> None:
        """The stale sweep, and what each known task is expected to cost."""
        options, control = self.options, self.control
        if options.stale_after is not None:
            control.sweep_task_ids = stale_task_ids(pipeline, options.stale_after)
        # What known tasks cost last time (1 when not listed): --max-requests admits whole tasks,
        # the progress display counts the requests left.
        control.expected_pages = multi_page_tasks(pipeline)
        control.dry_run = options.dry_run
        control.rows_per_part = options.rows_per_load or None

    def dry_run(self, pipeline: dlt.Pipeline, source: DltSource) -> None:
        pipeline.activate()  # the fetch reads the discovery cursor from dlt state
        for _ in source.resources["fetch_followers"]:
            pass  # listing pages and invalid ids arrive as items; nothing is loaded
        self.result.planned = list(self.control.planned)
        self.result.planned_requests = self.waiting(
            lambda: estimated_requests(pipeline, [task for task, _ in self.control.planned]),
            "reading what the tasks cost last time",
        )

    def load_part(self, pipeline: dlt.Pipeline, source: DltSource) -> None:
        """Extract, normalize and load one part, then derive the history and views from it.

        dlt touches the destination before extracting (state sync) and while loading; the
        source reads it once before its first request. If the file is busy at the load, the
        fetched part is a normalized package: wait for the file and load that package.
        """
        try:
            info = pipeline.run(source)
        except Exception as exc:
            if busy_reason(exc) is None or not pipeline.has_pending_data:
                raise
            info = self.waiting(lambda: _load_pending(pipeline), "loading what this run fetched")
        self.result.load_ids += info.loads_ids
        _add_step_times(self.result.step_seconds, pipeline)
        with self.control.step("history and views"):
            self.waiting(lambda: after_load(pipeline), "updating the follow history and views")


def _load_pending(pipeline: dlt.Pipeline) -> LoadInfo:
    if pipeline.list_extracted_load_packages():
        pipeline.normalize()
    return pipeline.load()


def _to_stderr(line: str) -> None:
    print(f"feishu-followers: {line}", file=sys.stderr, flush=True)


def run(
    options: RunOptions, control: RunControl | None = None, notify: Callable[[str], None] = _to_stderr
) -> RunResult:
    """Load followers per ``options``; raises FatalError (one line) when the run cannot go on.

    Order of work: take the locks (before anything touches dlt's working folder or the
    destination) → wait for the DuckDB file if a reader holds it → finish what an earlier run
    left pending → fetch and load in parts, history and views after each → prune dlt's folder.
    ``control`` lets the caller read live counters and stop the run early (see RunControl);
    ``notify`` prints what the run waits for.
    """
    started = time.monotonic()
    pipelines_dir = options.pipelines_dir or get_dlt_pipelines_dir()
    the_run = Run(options, control or RunControl(), notify)
    with run_lock(options.pipeline_name, pipelines_dir, options.duckdb_path), fatal_errors_as_one_line():
        result = the_run.execute()
    result.elapsed_seconds = time.monotonic() - started
    return result
