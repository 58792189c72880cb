"""One run: task ids in, tables out, with the guarantees a scheduler needs.

Order of work: refuse a concurrent run (locks, before anything is touched) → wait, bounded,
for a DuckDB file that a reader holds → finish any load an earlier run left pending → extract,
normalize and load this run in parts, each followed by the history and views → prune dlt's
working folder → summary. A stop request (Ctrl-C, SIGTERM) ends the fetch early; what was
fetched is still loaded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dlt
import duckdb
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo, get_dlt_pipelines_dir
from dlt.extract import DltSource

from feishu_tasks import feishu_tasks
from feishu_tasks.control import RunControl, run_control
from feishu_tasks.errors import FatalError
from feishu_tasks.known_tasks import ONLY_AT_MOST, count_stale, estimated_requests
from feishu_tasks.stats import FetchStats
from feishu_tasks.task_ids import IdsInOrder, TaskIdsFile

from .destination import (
    DEFAULT_DESTINATION,
    builds_derived_relations,
    check_writable,
    checked_duckdb_file,
    make_destination,
    query_task_ids,
    skipped_steps_note,
)
from .errors import fatal_errors_as_one_line
from .history import apply_history
from .lock import run_lock
from .migration import adopt_former_folder, former_names
from .options import NO_TASKS, PIPELINE_NAME, RunOptions
from .ownership import claim_working_folder
from .post_load import after_load, prune_completed_packages
from .preflight import check_before_start
from .progress import StepCollector, dlt_log_collector
from .set_aside import set_aside_when_terminal
from .stderr import say
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


def collect_task_ids(options: RunOptions, pipeline: dlt.Pipeline) -> Iterable[str]:
    """Ids from flags, the ids file and the query, in that order (deduplicated later).

    The file is checked whole here, before anything starts, but not held: a big one is read
    again as the fetch takes its ids into the on-disk ledger (a million ids held as a list cost
    ~90 MB for the whole run). A small one is held, so that a run of a few tasks reads what the
    destination knows of those tasks only (``known_tasks.ONLY_AT_MOST``).
    """
    given: list[str] = list(options.task_ids)
    parts: list[Iterable[str]] = [given]
    count = len(given)
    if options.task_ids_file:
        ids_file = TaskIdsFile(options.task_ids_file)
        try:
            in_file = ids_file.count()
            parts.append(list(ids_file) if in_file <= ONLY_AT_MOST else ids_file)
        except OSError as exc:
            raise FatalError(f"cannot read --task-ids-file {options.task_ids_file}: {exc.strerror}") from None
        count += in_file
    if options.task_ids_query:
        queried = query_task_ids(pipeline, options)
        parts.append(queried)
        count += len(queried)
    listed = options.discover or options.tasklists or options.all_tasklists
    if not count and not listed and options.stale_after is None and not options.changed:
        raise FatalError(NO_TASKS)  # e.g. an ids file with none in it
    if all(isinstance(part, list) for part in parts):
        return [task_id for part in parts for task_id in part]
    return IdsInOrder(*parts)


def journal_path(options: RunOptions) -> Path:
    """The change journal (see ``RunOptions.journal_file``)."""
    return options.journal_file()


def make_pipeline(
    options: RunOptions, progress: bool, on_step: Callable[[str, bool], None] | None = None
) -> dlt.Pipeline:
    """The dlt pipeline; ``dlt pipeline <name> info`` reads the same working folder.

    ``progress``: dlt's own progress log (``--verbose``); else ``on_step`` hears of dlt's steps.
    """
    collector = dlt_log_collector() if progress else StepCollector(on_step) if on_step else None
    extra: dict[str, Any] = {"progress": collector} if collector else {}
    pipelines_dir = options.pipelines_dir or get_dlt_pipelines_dir()
    try:
        pipeline = dlt.pipeline(
            pipeline_name=options.pipeline_name,
            destination=dry_run_destination(options) or make_destination(options),
            dataset_name=options.dataset,
            pipelines_dir=pipelines_dir,
            **extra,
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # dlt reads its state and schemas first
        folder = Path(pipelines_dir) / options.pipeline_name
        raise FatalError(
            f"dlt's working folder {folder} is damaged ({str(exc).splitlines()[0]}); move it away and "
            "run again: the state is restored from the destination, and what was pending is fetched again"
        ) from None
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
        with set_aside_when_terminal(pipeline, "an earlier run"):
            _load_pending(pipeline)
    if builds_derived_relations(pipeline):
        apply_history(pipeline)
    return pending


class Run:
    """One run's steps, in the order that keeps a scheduled load exact (see the module doc)."""

    def __init__(
        self,
        options: RunOptions,
        control: RunControl,
        notify: Callable[[str], None],
        on_step: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.options, self.control, self.notify = options, control, notify
        self.inputs, self.report = control.inputs, control.report
        self.on_step = on_step or (lambda step, started: None)
        self.result = RunResult(options, control.report.stats, 0.0, False)
        # Set when other runs in this process load into the same dataset (a store app's tenants,
        # tenants.py): what writes the dataset (dlt's load with its staging tables, the history)
        # runs under it, one run at a time; the fetches run side by side.
        self.destination_lock: AbstractContextManager[Any] | None = None
        # Beside them, dlt's normalize may take turns too (``normalize_lock``), and the history and
        # views may be left to the caller, once for every run (they cover every load).
        self.normalize_lock: AbstractContextManager[Any] = nullcontext()
        self.after_each_load = True

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Tell ``on_step`` that the step ``name`` runs while the block does."""
        self.on_step(name, True)
        try:
            yield
        finally:
            self.on_step(name, False)

    def waiting(self, step: Callable[[], T], what: str) -> T:
        """``step()``, waiting (bounded) while another process holds the DuckDB file."""
        return wait_while_busy(
            step, what, self.options.lock_timeout_seconds, self.notify, stopping=self.inputs.stop.is_set
        )

    def execute(self) -> RunResult:
        options = self.options
        pipeline = make_pipeline(options, options.verbose and not options.dry_run, self.on_step)
        if not options.dry_run:  # a dry run writes nothing at the destination (dry_run.py)
            with self.writing():
                self.waiting(lambda: check_writable(pipeline, options), "opening it")
        if claim_working_folder(options, pipeline):  # it worked for another destination: start afresh
            pipeline = make_pipeline(options, options.verbose and not options.dry_run, self.on_step)
        task_ids = self.waiting(lambda: collect_task_ids(options, pipeline), "reading task ids from it")
        if (note := skipped_steps_note(pipeline)) and not options.quiet:
            self.notify(note)
        if options.dry_run:
            if note := pending_note(pipeline):
                self.notify(note)
        else:
            with self.writing():
                self.result.completed_pending = self.waiting(
                    lambda: finish_pending(pipeline), "loading what an earlier run fetched"
                )
        if self.inputs.stop.is_set():
            return self.result
        self.inputs.dry_run = options.dry_run
        self.inputs.rows_per_part = options.memory.rows_per_part
        with run_control(self.control):
            source = feishu_tasks(**options.source_arguments(task_ids))
        if options.dry_run:
            self.dry_run(pipeline, source)
        else:
            while not self.report.finished:  # a big run is loaded in parts (rows_per_load)
                self.load_part(pipeline, source)
            prune_completed_packages(pipeline)
        if (threshold := options.stale_after) is not None:
            self.result.stale_after_run = self.waiting(
                lambda: count_stale(pipeline, threshold, options.tenant_key), "counting stale tasks"
            )
        return self.result

    def dry_run(self, pipeline: dlt.Pipeline, source: DltSource) -> None:
        pipeline.activate()  # the fetch reads the discovery cursor from dlt state

        def plan() -> None:
            for _ in source.resources["fetch_followers"]:
                pass  # listing pages and invalid ids arrive as items; nothing is loaded

        self.waiting(plan, "reading which tasks are due")
        self.result.planned = list(self.report.planned)
        self.result.planned_requests = self.waiting(
            lambda: estimated_requests(
                pipeline, [task for task, _ in self.report.planned], self.options.tenant_key
            ),
            "reading what the tasks cost last time",
        )

    def load_part(self, pipeline: dlt.Pipeline, source: DltSource) -> None:
        """Extract, normalize and load one part, then derive the history and views from it.

        dlt touches the destination before extracting (state sync) and while loading; the
        source reads it once, before its first request. If the DuckDB file is busy then,
        nothing is fetched yet: wait and start again. If it is busy at the load, the fetched
        part is a normalized package: wait for the file and load that package.
        """
        with set_aside_when_terminal(pipeline, "this run"):
            try:
                info = self.run_pipeline(pipeline, source)
            except Exception as exc:
                if busy_reason(exc) is None:
                    raise
                if pipeline.has_pending_data:
                    info = self.waiting(lambda: _load_pending(pipeline), "loading what this run fetched")
                elif self.report.stats.sent == 0:
                    info = self.waiting(lambda: pipeline.run(source), "reading what it already holds")
                else:
                    raise
        self.result.load_ids += info.loads_ids
        _add_step_times(self.result.step_seconds, pipeline)
        if self.after_each_load:
            with self.step("history and views"), self.writing():
                self.waiting(lambda: after_load(pipeline), "updating the follow history and views")

    def writing(self) -> AbstractContextManager[Any]:
        """Held while this run writes the dataset (see ``destination_lock``)."""
        return self.destination_lock or nullcontext()

    def run_pipeline(self, pipeline: dlt.Pipeline, source: DltSource) -> LoadInfo:
        """dlt's ``run``; beside other runs into the dataset, its load step alone under the lock."""
        if self.destination_lock is None:
            return pipeline.run(source)
        pipeline.sync_destination()  # as run() does: the state kept at the destination (a read)
        pipeline.extract(source)
        with self.normalize_lock:
            pipeline.normalize()
        with self.writing():
            return pipeline.load()


def _load_pending(pipeline: dlt.Pipeline) -> LoadInfo:
    if pipeline.list_extracted_load_packages():
        pipeline.normalize()
    return pipeline.load()


def run(
    options: RunOptions,
    control: RunControl | None = None,
    notify: Callable[[str], None] = say,
    on_step: Callable[[str, bool], None] | None = None,
    lock_held: bool = False,
) -> RunResult:
    """Load followers per ``options``; raises FatalError (one line) when the run cannot go on.

    Order of work: check the configuration (creating nothing) → take the locks (before
    anything touches dlt's working folder or the destination) → adopt the pipeline's folder
    of its former name → wait for the DuckDB file if a reader holds it → finish what an earlier
    run left pending → fetch and load in parts, history and views after each → prune dlt's folder.
    ``control`` lets the caller read live counters and stop the run early (see RunControl);
    ``notify`` prints what the run waits for; ``on_step`` hears of the steps after the fetch.
    ``lock_held``: the caller holds ``run_lock`` for the pipeline already (``follow`` holds it for
    its whole life and runs one load per micro-batch; a second ``flock`` would refuse), and made
    the checks before the start when it took it.
    """
    started = time.monotonic()
    if not lock_held:  # a holder of the lock checked before it took it (``follow``, once at its start)
        with fatal_errors_as_one_line():
            check_before_start(options)
    pipelines_dir = options.pipelines_dir or get_dlt_pipelines_dir()
    the_run = Run(options, control or RunControl(), notify, on_step)
    duckdb_file = checked_duckdb_file(options) if options.destination == DEFAULT_DESTINATION else None
    former = former_names(options.pipeline_name, pipelines_dir, PIPELINE_NAME)
    lock: AbstractContextManager[None] = (
        nullcontext() if lock_held else run_lock(options.pipeline_name, pipelines_dir, duckdb_file, former)
    )
    with lock, fatal_errors_as_one_line():
        if former:
            adopt_former_folder(pipelines_dir, options.pipeline_name, notify)
        result = the_run.execute()
    result.elapsed_seconds = time.monotonic() - started
    return result


# --------------------------------------------------------------------------------------- a dry run
# What a dry run may touch: it reads the destination, and writes nothing there.
#
# A dry run lists the tasks a run would fetch and what that costs, from the destination's status
# table. It neither completes a load an earlier run left pending (the next real run does, first)
# nor probes the destination with a table, nor creates a DuckDB file that is not there: against a
# file that does not exist yet, it reads an empty in-memory database instead (dlt takes a DuckDB
# connection as credentials).
def dry_run_destination(options: RunOptions) -> Destination[Any, Any] | None:
    """An empty in-memory DuckDB for a dry run whose DuckDB file does not exist; else None (the real one)."""
    if not options.dry_run or options.destination != DEFAULT_DESTINATION:
        return None
    if Path(options.duckdb_path).exists():
        return None
    return dlt.destinations.duckdb(duckdb.connect(":memory:"))


def pending_note(pipeline: dlt.Pipeline) -> str | None:
    """What a dry run says about a load an earlier run left pending (it does not complete it)."""
    if not pipeline.has_pending_data:
        return None
    return "a load of an earlier run is pending: the next run (not a dry run) loads it first"
