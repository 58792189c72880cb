"""One load: task ids in, DuckDB tables out, with the guarantees a scheduler needs.

Order of work: refuse a concurrent run (lock) → finish any load a killed run left pending →
extract, normalize and load this run → post-load steps (history, views) → summary.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dlt
import duckdb
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from feishu_tasks import feishu_tasks
from feishu_tasks.control import RunControl, run_control
from feishu_tasks.errors import ConfigError, FatalError
from feishu_tasks.stats import FetchStats
from feishu_tasks.task_ids import read_task_ids_file

from .errors import fatal_errors_as_one_line
from .history import apply_history
from .lock import pipeline_lock
from .options import RunOptions
from .post_load import after_load
from .selection import count_stale, estimated_requests, stale_task_ids


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


def make_pipeline(options: RunOptions, progress: bool) -> dlt.Pipeline:
    """The dlt pipeline; ``dlt pipeline <name> info`` reads the same working folder."""
    extra = {"progress": dlt.progress.log(10, sys.stderr)} if progress else {}
    credentials = DuckDbCredentials(str(Path(options.duckdb_path).resolve()))
    if options.duckdb_memory_limit:
        # DuckDB's default is 80% of RAM, and a merge of a big load takes what it can get
        # (bench case 4: peak RSS 574 MB unbounded, 532 MB at 256MB). Bounded, it spills to disk.
        credentials.global_config = {"memory_limit": options.duckdb_memory_limit}
    return dlt.pipeline(
        pipeline_name=options.pipeline_name,
        destination=dlt.destinations.duckdb(credentials),
        dataset_name=options.dataset,
        pipelines_dir=options.pipelines_dir,
        **extra,
    )


def _add_step_times(totals: dict[str, float], pipeline: dlt.Pipeline) -> None:
    """Add the last ``pipeline.run``'s extract/normalize/load times (dlt keeps only the last trace)."""
    trace = pipeline.last_trace
    for step in trace.steps if trace else ():
        if step.step in ("extract", "normalize", "load") and step.started_at and step.finished_at:
            seconds = (step.finished_at - step.started_at).total_seconds()
            totals[step.step] = totals.get(step.step, 0.0) + seconds


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Complete what a killed run left: its load packages first, then their history.

    dlt's ``run()`` would load pending packages and then skip the new data, so we do it here.
    The views need no refresh for that: they read the tables, and this run's load refreshes them.
    """
    pending = pipeline.has_pending_data
    if pending:
        pipeline.normalize()
        pipeline.load()
    apply_history(pipeline)
    return pending


def run(options: RunOptions, control: RunControl | None = None) -> RunResult:
    """Load followers per ``options``; raises FatalError (one line) when the run cannot go on.

    ``control`` lets the caller read live counters and stop the run early (see RunControl).
    """
    started = time.monotonic()
    control = control or RunControl()
    task_ids = collect_task_ids(options)
    check_destination(options.duckdb_path, options.dataset)
    progress = not options.quiet and not options.dry_run and sys.stderr.isatty()
    pipeline = make_pipeline(options, progress)
    with pipeline_lock(pipeline), fatal_errors_as_one_line():
        completed_pending = finish_pending(pipeline)
        if options.stale_after is not None:
            control.sweep_task_ids = stale_task_ids(pipeline, options.stale_after)
        if options.max_requests:
            control.expected_pages = estimated_requests(pipeline, list(control.sweep_task_ids))
        control.dry_run = options.dry_run
        control.rows_per_part = options.rows_per_load or None
        with run_control(control):
            source = feishu_tasks(
                task_ids=task_ids,
                discover=options.discover,
                full_refresh=options.full_refresh,
                max_requests=options.max_requests,
                **options.source_args,
            )
        result = RunResult(options, control.stats, 0.0, completed_pending)
        if options.dry_run:
            pipeline.activate()  # the fetch reads the discovery cursor from dlt state
            for _ in source.resources["fetch_followers"]:
                pass  # listing pages and invalid ids arrive as items; nothing is loaded
            result.planned = list(control.planned)
            result.planned_requests = estimated_requests(pipeline, [task for task, _ in control.planned])
        else:
            while not control.finished:  # a big run is loaded in parts (rows_per_load)
                result.load_ids += pipeline.run(source).loads_ids
                _add_step_times(result.step_seconds, pipeline)
                after_load(pipeline)
        if options.stale_after is not None:
            result.stale_after_run = count_stale(pipeline, options.stale_after)
    result.elapsed_seconds = time.monotonic() - started
    return result
