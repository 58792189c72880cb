"""What a runner adds to a plain ``pipeline.run(feishu_tasks(...))``: our CLI's plumbing.

A dlt user never sees this. Our runner (``feishu_followers.run``) calls the source inside
``run_control(control)``; the source picks it up when called. Two halves, each written by one
side only:

- ``RunInputs``, written by the runner and read by the fetch: a dry run, loading a big run in
  parts, and the request to stop early (Ctrl-C, SIGTERM) without losing what was fetched;
- ``RunReport``, written by the fetch and read by the runner: live counters, what a dry run
  would fetch, and whether everything was handed to dlt.

Without a runner both keep their defaults: fetch everything, load it in one go.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from .slots import SharedSlots
from .stats import FetchStats


@dataclass
class RunInputs:
    """The runner's side: set before the fetch (``stop`` also while it runs)."""

    # List the tasks a run would fetch (into ``RunReport.planned``) instead of fetching followers.
    dry_run: bool = False
    # Hand the fetch to dlt in parts of about this many rows, one dlt load each (None = one load).
    rows_per_part: int | None = None
    # Set to end the fetch early: no new task starts, requests in flight are cancelled, and what
    # was fetched so far is handed on to be loaded.
    stop: threading.Event = field(default_factory=threading.Event)
    # A cap on requests in flight shared with the other tenants loading in this process.
    request_slots: SharedSlots | None = None
    # Rows per batch handed from the fetch to dlt (None: the fetch's own default). Until a batch is
    # full its rows wait in memory: a process loading many tenants gives each a smaller share.
    batch_rows: int | None = None


@dataclass
class RunReport:
    """The fetch's side: what it did so far (the runner and a progress display read it)."""

    stats: FetchStats = field(default_factory=FetchStats)
    planned: list[tuple[str, str]] = field(default_factory=list)  # dry run: (task id, why)
    finished: bool = False  # every task of the run has been handed to dlt


@dataclass(frozen=True)
class RunControl:
    """Both halves of one run's plumbing."""

    inputs: RunInputs = field(default_factory=RunInputs)
    report: RunReport = field(default_factory=RunReport)


_current: ContextVar[RunControl | None] = ContextVar("feishu_tasks_run_control", default=None)


@contextmanager
def run_control(control: RunControl) -> Iterator[RunControl]:
    """Sources created inside this block take their plumbing from ``control``."""
    token = _current.set(control)
    try:
        yield control
    finally:
        _current.reset(token)


def current_run_control() -> RunControl:
    """The runner's control, or a fresh default one for a plain ``pipeline.run``."""
    return _current.get() or RunControl()
