"""One load: task ids in, destination tables out, with the guarantees a scheduler needs.

Order of work: refuse a concurrent run (lock) → finish any load a killed run left pending →
extract, normalize and load this run → post-load steps (history, views) → summary.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import dlt
from feishu_tasks import FetchStats, feishu_tasks
from feishu_tasks.errors import FatalError
from feishu_tasks.task_ids import read_task_ids_file

from .destination import (
    builds_derived_relations,
    check_writable,
    make_destination,
    query_task_ids,
    skipped_steps_note,
)
from .errors import fatal_errors_as_one_line
from .history import apply_history
from .lock import pipeline_lock
from .options import RunOptions
from .selection import count_stale, estimated_requests, stale_task_ids
from .views import create_views


@dataclass
class RunResult:
    """What the summary reports."""

    options: RunOptions
    stats: FetchStats
    elapsed_seconds: float
    completed_pending: bool
    load_ids: list[str] = field(default_factory=list)
    stale_after_run: int | None = None
    planned_requests: dict[str, int] = field(default_factory=dict)  # dry run: task → requests
    step_seconds: dict[str, float] = field(default_factory=dict)  # dlt's steps, summed over loads


def collect_task_ids(options: RunOptions, pipeline: dlt.Pipeline) -> list[str]:
    """Ids from flags, the ids file and the query, in that order (deduplicated later)."""
    ids = list(options.task_ids)
    if options.task_ids_file:
        try:
            ids += read_task_ids_file(options.task_ids_file)
        except OSError as exc:
            raise FatalError(f"cannot read --task-ids-file {options.task_ids_file}: {exc.strerror}") from None
    if options.task_ids_query:
        ids += query_task_ids(pipeline, options)
    if not ids and not options.discover and options.stale_after is None:
        raise FatalError(
            "no task ids given: use --task-id, --task-ids-file, --task-ids-query, --discover or --stale-after"
        )
    return ids


def make_pipeline(options: RunOptions, progress: bool) -> dlt.Pipeline:
    """The dlt pipeline; ``dlt pipeline <name> info`` reads the same working folder."""
    extra = {"progress": dlt.progress.log(10, sys.stderr)} if progress else {}
    return dlt.pipeline(
        pipeline_name=options.pipeline_name,
        destination=make_destination(options),
        dataset_name=options.dataset,
        pipelines_dir=options.pipelines_dir,
        **extra,
    )


def after_load(pipeline: dlt.Pipeline) -> None:
    """Post-load steps that derive relations from the loaded tables; each one is idempotent."""
    if builds_derived_relations(pipeline):
        apply_history(pipeline)
        create_views(pipeline)


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
    if builds_derived_relations(pipeline):
        apply_history(pipeline)
    return pending


def run(options: RunOptions) -> RunResult:
    """Load followers per ``options``; raises FatalError (one line) when the run cannot go on."""
    started = time.monotonic()
    progress = not options.quiet and not options.dry_run and sys.stderr.isatty()
    pipeline = make_pipeline(options, progress)
    task_ids = collect_task_ids(options, pipeline)
    check_writable(pipeline, options)
    note = skipped_steps_note(pipeline)
    if note and not options.quiet:
        print(note, file=sys.stderr)
    with pipeline_lock(pipeline), fatal_errors_as_one_line():
        completed_pending = finish_pending(pipeline)
        sweep = stale_task_ids(pipeline, options.stale_after) if options.stale_after is not None else []
        stats = FetchStats()
        source = feishu_tasks(
            task_ids=task_ids,
            discover=options.discover,
            full_refresh=options.full_refresh,
            sweep_task_ids=sweep,
            max_requests=options.max_requests,
            expected_pages=estimated_requests(pipeline, sweep) if options.max_requests else None,
            dry_run=options.dry_run,
            stats=stats,
            **options.source_args,
        )
        result = RunResult(options, stats, 0.0, completed_pending)
        if options.dry_run:
            pipeline.activate()  # the resource reads the discovery cursor from dlt state
            for _ in source.resources["followers"]:
                pass  # invalid ids arrive as items; nothing is loaded
            result.planned_requests = estimated_requests(pipeline, [task for task, _ in stats.planned])
        else:
            while not stats.finished:  # a big run is loaded in parts (rows_per_load)
                result.load_ids += pipeline.run(source).loads_ids
                _add_step_times(result.step_seconds, pipeline)
                after_load(pipeline)
        if options.stale_after is not None:
            result.stale_after_run = count_stale(pipeline, options.stale_after)
    result.elapsed_seconds = time.monotonic() - started
    return result
