"""What a runner adds to a plain ``pipeline.run(feishu_tasks(...))``: our CLI's plumbing.

A dlt user never sees this. Our runner (``feishu_followers.run``) creates a ``RunControl`` and
calls the source inside ``run_control(control)``; the source picks it up when called. Through
it the runner adds the stale sweep, reads live counters, asks for a dry run, loads a big run
in parts, stops a run early (Ctrl-C, SIGTERM) without losing what was fetched, and tells a
progress display which step of the run is under way.
Without a runner every field keeps its default: fetch everything, load it in one go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from .stats import FetchStats


@dataclass
class RunControl:
    """The runner's side of one fetch."""

    stats: FetchStats = field(default_factory=FetchStats)
    # Known tasks due again (the stale sweep), oldest first; fetched after the others.
    sweep_task_ids: Sequence[str] = ()
    # Requests each known task took last time, so --max-requests admits whole tasks.
    expected_pages: Mapping[str, int] = field(default_factory=dict)
    # List the tasks a run would fetch (into ``planned``) instead of fetching followers.
    dry_run: bool = False
    planned: list[tuple[str, str]] = field(default_factory=list)  # (task id, why)
    # Hand the fetch to dlt in parts of about this many rows, one dlt load each (None = one load).
    rows_per_part: int | None = None
    # Set by the runner to end the fetch early: no new task starts, requests in flight are
    # cancelled, and what was fetched so far is handed on to be loaded.
    stop: threading.Event = field(default_factory=threading.Event)
    # Set by the source when every task of the run has been handed to dlt.
    finished: bool = False
    # Told when a step after the fetch starts (True) and ends (False): normalize, load, history.
    on_step: Callable[[str, bool], None] = field(default=lambda step, started: None)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Tell ``on_step`` that the step ``name`` runs while the block does."""
        self.on_step(name, True)
        try:
            yield
        finally:
            self.on_step(name, False)


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
