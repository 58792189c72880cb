"""A store app's run: its tenants side by side (``run --tenant KEY``, repeatable, or ``--all-tenants``).

Each tenant is its own dlt pipeline (``<pipeline>__<tenant_key>``: its own working folder, state
and pending loads, so one tenant's load never lands in another's place) into the one dataset,
where every row carries its ``tenant_key``. All of them run in this process at once: each fetch in
its own thread with its own client, paced on its tenant's own quota (Feishu counts per app and
tenant), under one cap on requests in flight (``SharedSlots``); the steps that write the dataset
take turns (dlt's merge shares one staging dataset; dlt's normalize steps do not need to, and
making them did not lower the peak memory: BENCHMARKS.md), and the history and views are brought
up to date once, after every tenant's load (they apply every load not applied yet, whichever
pipeline made it). What waits in memory (fetched rows, dlt's buffers) is each tenant's share of
one run's (``tenant_memory``), so each further tenant costs little. A tenant's failure (it
stopped the app, its token was refused, no permission) is that tenant's outcome: the others go
on, and the exit code says whether any tenant failed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from dlt.common.destination.exceptions import SqlClientNotAvailable
from dlt.common.pipeline import get_dlt_pipelines_dir

from feishu_tasks.control import RunControl, RunInputs
from feishu_tasks.errors import ConfigError, FatalError
from feishu_tasks.journal import Journal, JournalError
from feishu_tasks.slots import SharedSlots
from feishu_tasks.store_app import check_tenant_key, tenant_pipeline_name
from feishu_tasks.tenant_column import add_tenant_key

from .allocators import cap_malloc_arenas
from .destination import DEFAULT_DESTINATION, checked_duckdb_file
from .errors import fatal_errors_as_one_line
from .lock import run_lock
from .options import RunOptions, from_config
from .post_load import after_load
from .preflight import check_before_start
from .run import Run, RunResult, journal_path, make_pipeline
from .stderr import say
from .tenant_memory import (
    batch_rows,
    keep_resolved_config_traces,
    release_dlt_contexts,
    return_freed_memory,
    shared_writer_buffers,
)

# The statuses a tenant loads in: it installed the app (app_open) and did not stop it since.
SERVING = ("installed", "active")


@dataclass
class TenantOutcome:
    """How one tenant's load ended: its result, or the one line that ended it."""

    tenant_key: str
    result: RunResult | None = None
    error: str | None = None
    app_status: str | None = None  # as the events last told (installed, active, stopped, uninstalled)

    @property
    def failed(self) -> bool:
        return self.error is not None


def chosen_tenants(options: RunOptions) -> list[str]:
    """``--tenant`` keys, then (``--all-tenants``) every serving tenant the journal knows; each checked.

    A key that is not a plain token is refused in one line before any request is made.
    """
    keys = list(options.tenants)
    if options.all_tenants:
        try:
            with Journal(journal_path(options)) as journal:
                known = journal.tenants()
        except JournalError as exc:
            raise FatalError(str(exc)) from None
        keys += [key for key, status in known.items() if status in SERVING]
        if not keys:
            raise FatalError(
                f"--all-tenants: no tenant has the app installed and on in {journal_path(options)}; "
                "`feishu-followers listen` records the app_open events there (or name one with --tenant)"
            )
    return [check_tenant_key(key) for key in dict.fromkeys(keys)]


def tenant_options(options: RunOptions, tenant_key: str) -> RunOptions:
    """One tenant's run: its own pipeline (working folder, state), the shared journal and dataset."""
    journal = str(journal_path(options))
    return replace(
        options,
        tenants=[],
        all_tenants=False,
        tenant_key=tenant_key,
        pipeline_name=tenant_pipeline_name(options.pipeline_name, tenant_key),
        journal=journal,
        source_args={**options.source_args, "tenant_key": tenant_key, "ticket_journal": journal},
    )


DEFAULT_MAX_IN_FLIGHT = 64  # requests in flight across every tenant (each paces on its own quota)
MAX_IN_FLIGHT_KEY = "max_in_flight"  # sources.feishu_tasks.max_in_flight in dlt config


def max_in_flight() -> int:
    """The cap on requests in flight across tenants, from dlt config (``…__MAX_IN_FLIGHT``)."""
    value = from_config(MAX_IN_FLIGHT_KEY, DEFAULT_MAX_IN_FLIGHT)
    try:
        cap = int(str(value).strip())
    except ValueError:
        cap = 0
    if cap < 1:
        raise ConfigError(
            "sources.feishu_tasks.max_in_flight (SOURCES__FEISHU_TASKS__MAX_IN_FLIGHT): cannot use "
            f"{value!r}; expected a whole number of requests, at least 1"
        )
    return cap


def run_tenants(
    options: RunOptions,
    notify: Callable[[str], None] = say,
    stop: threading.Event | None = None,
    in_flight: int | None = None,
) -> list[TenantOutcome]:
    """Load every chosen tenant side by side in this process; each failure is its tenant's outcome.

    Each tenant fetches in its own thread, paced on its own quota, all of them within one cap on
    requests in flight; what writes the dataset (dlt's load, the history) runs one tenant at a
    time. ``stop`` (set by a signal) ends every tenant's fetch; what was fetched is loaded.
    """
    with fatal_errors_as_one_line():
        keys = chosen_tenants(options)
        check_before_start(tenant_options(options, keys[0]))
        slots = SharedSlots(in_flight or max_in_flight())
    stop = stop or threading.Event()
    writing = threading.Lock()
    runs = []
    for key in keys:
        control = RunControl(RunInputs(stop=stop, request_slots=slots, batch_rows=batch_rows(len(keys))))
        the_run = Run(tenant_options(options, key), control, _prefixed(notify, key))
        the_run.destination_lock = writing
        the_run.after_each_load = False  # once for all, below: each costs a turn at the dataset
        runs.append((TenantOutcome(key), the_run))
    with ExitStack() as held:
        held.enter_context(_locks(options, [the_run.options for _, the_run in runs]))
        held.enter_context(fatal_errors_as_one_line())
        held.enter_context(shared_writer_buffers(len(runs)))
        _import_before_threads()
        cap_malloc_arenas()
        _add_tenant_key_once(runs[0][1].options)
        threads = [
            threading.Thread(
                target=_load, args=(outcome, the_run), name=f"tenant-{outcome.tenant_key}", daemon=True
            )
            for outcome, the_run in runs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(outcome.result is not None and outcome.result.load_ids for outcome, _ in runs):
            after_load(make_pipeline(runs[0][1].options, progress=False))  # every tenant's loads
    statuses = _recorded_statuses(options)
    for outcome, _ in runs:
        outcome.app_status = statuses.get(outcome.tenant_key)
        if outcome.error is not None:
            notify(f"tenant {outcome.tenant_key}: error: {outcome.error}")
    return [outcome for outcome, _ in runs]


def _recorded_statuses(options: RunOptions) -> dict[str, str]:
    """Each tenant's status as ``listen`` recorded it (by now: an uninstall during the run too)."""
    path = journal_path(options)
    if not path.exists():
        return {}
    try:
        with Journal(path) as journal:
            return dict(journal.tenants())
    except JournalError:
        return {}


def _load(outcome: TenantOutcome, the_run: Run) -> None:
    """One tenant's run, in its thread: its result, or the one line that ended it."""
    started = time.monotonic()
    keep_resolved_config_traces()  # this thread's log of dlt's config lookups (tenant_memory.py)
    try:
        with fatal_errors_as_one_line():
            result = the_run.execute()
        result.elapsed_seconds = time.monotonic() - started
        outcome.result = result
    except FatalError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # a bug: still this tenant's one line, never the others' end
        text = str(exc).strip().splitlines()
        outcome.error = (
            f"unexpected {type(exc).__name__}: {text[0] if text else ''} (a bug: please report it)"
        )
    finally:
        release_dlt_contexts()  # dlt would keep this tenant's pipeline after its thread ends
        return_freed_memory()  # this tenant's pipeline and rows are gone: the others may use the pages


@contextmanager
def _locks(options: RunOptions, tenants: list[RunOptions]) -> Iterator[None]:
    """Each tenant pipeline's lock and, once, the DuckDB file's (``run_lock`` per run otherwise)."""
    pipelines_dir = options.pipelines_dir or get_dlt_pipelines_dir()
    duckdb_file = checked_duckdb_file(options) if options.destination == DEFAULT_DESTINATION else None
    with ExitStack() as held:
        for position, tenant in enumerate(tenants):
            held.enter_context(
                run_lock(tenant.pipeline_name, pipelines_dir, duckdb_file if position == 0 else None)
            )
        yield


def _add_tenant_key_once(options: RunOptions) -> None:
    """A dataset from before ``tenant_key`` gets it here, before the tenants' fetches read it at once."""
    pipeline = make_pipeline(options, progress=False)
    try:
        with pipeline.sql_client() as client:
            if client.has_dataset():
                add_tenant_key(client)
    except SqlClientNotAvailable:  # no SQL: no keys to keep
        return


def _import_before_threads() -> None:
    """What dlt imports on first use, imported here once: threads importing one module at the same
    time can be handed it half-initialized (importlib's answer to a possible deadlock). pyarrow's
    first conversion of Python values imports pandas to ask whether it is installed, so that
    question is asked here too: the CLI has answered it "no" already (``pandas_probe.py``), a
    caller in a notebook gets pandas imported here, in one thread."""
    import pyarrow
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    pyarrow.array([0])


def _prefixed(notify: Callable[[str], None], key: str) -> Callable[[str], None]:
    return lambda line: notify(f"tenant {key}: {line}")


def tenants_json(outcomes: list[TenantOutcome]) -> dict[str, Any]:
    """``--json``: each tenant's summary (or its error), and whether any failed."""
    from .summary import summary_json

    return {
        "failed": [o.tenant_key for o in outcomes if o.failed],
        "tenants": {
            o.tenant_key: {"app_status": o.app_status}
            | ({"error": o.error} if o.result is None else summary_json(o.result))
            for o in outcomes
        },
    }


def format_tenants(outcomes: list[TenantOutcome], quiet: bool = False) -> str:
    """Each tenant's summary (a dry run's plan; ``quiet``: its one-line outcome) under its key, or
    its error line."""
    from .summary import format_dry_run, format_summary, outcome_line

    if quiet:
        return "\n".join(
            f"tenant {o.tenant_key}: " + (f"error: {o.error}" if o.result is None else outcome_line(o.result))
            for o in outcomes
        )
    blocks = []
    for o in outcomes:
        if o.result is None:
            body = f"  error: {o.error}"
        else:
            body = format_dry_run(o.result) if o.result.options.dry_run else format_summary(o.result)
        status = f" (app {o.app_status})" if o.app_status else ""
        blocks.append(f"tenant {o.tenant_key}{status}:\n{body}")
    failed = [o.tenant_key for o in outcomes if o.failed]
    blocks.append(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} tenant(s) loaded"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(blocks)


def run_tenants_cli(options: RunOptions, as_json: bool = False) -> int:
    """``run --tenant`` / ``--all-tenants``: exit 1 when any tenant failed fatally, else 0.

    The first SIGINT / SIGTERM stops every tenant's fetch (what was fetched is loaded); a second
    aborts.
    """
    from .signals import stop_on_signals

    stopping = RunControl()
    with stop_on_signals(stopping, say):
        outcomes = run_tenants(options, stop=stopping.inputs.stop)
    if as_json:
        print(json.dumps(tenants_json(outcomes), separators=(",", ":")), flush=True)
    else:
        print(format_tenants(outcomes, quiet=options.quiet and not options.dry_run), flush=True)
    return 1 if any(o.failed for o in outcomes) else 0
