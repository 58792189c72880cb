"""``feishu-followers follow``: ``listen`` and ``run --changed`` in one long-running process.

The receiver (``follow_receiver``: ``listen``'s server in a thread) records every event in the
change journal before answering it; the main thread loads, every ``--every`` seconds, what the
journal marked since the last batch, as ``run --changed`` does (nothing when nothing changed;
at once after a quiet spell).
A sweep batch (the task ids, lists, discovery and ``--stale-after`` given on the command line)
runs first and then every ``--sweep-every``. Each batch is one ``run()``: it opens the
destination and closes it, so an analyst can query the DuckDB file between batches.

``run``'s lock is held for the process's whole life: a ``run`` of the same pipeline meanwhile
exits 3. SIGTERM or Ctrl-C: the receiver stops taking events (those in flight are recorded and
answered), a batch under way loads what it fetched, and the changes not loaded yet stay in the
journal for the next start; exit 0. A second signal ends it at once: the journal is durable and
dlt's state commits with each load, so the next start reads again what was not loaded.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from dlt.common.pipeline import get_dlt_pipelines_dir

from feishu_tasks.control import RunControl
from feishu_tasks.errors import ConfigError, FatalError, events_extra_missing
from feishu_tasks.journal import Journal, JournalError
from feishu_tasks.settings import DEFAULT_FOLLOW_EVERY_SECONDS, DEFAULT_FOLLOW_SWEEP_EVERY_SECONDS

from .destination import DEFAULT_DESTINATION, checked_duckdb_file, duckdb_file_held
from .errors import fatal_errors_as_one_line
from .lock import run_lock
from .migration import former_names
from .options import PIPELINE_NAME, RunOptions
from .preflight import check_before_start
from .run import RunResult, run
from .signals import Aborted, signal_name
from .stderr import say as _stderr_say
from .waiting import DestinationBusy

POLL_SECONDS = 0.2  # how often an idle follower looks at the journal
SHUTDOWN_SECONDS = 30.0  # the receiver's requests in flight are recorded and answered within this


def _say(line: str) -> None:
    _stderr_say(f"follow: {line}")


@dataclass(frozen=True)
class Schedule:
    """When batches run: changes every ``every`` seconds, the sweep every ``sweep_every``."""

    every: float = DEFAULT_FOLLOW_EVERY_SECONDS
    sweep_every: float = DEFAULT_FOLLOW_SWEEP_EVERY_SECONDS


def changes_only(options: RunOptions) -> RunOptions:
    """A micro-batch: what the journal marks, nothing else (no ids, lists, discovery or sweep)."""
    return dataclasses.replace(
        options,
        task_ids=[],
        task_ids_file=None,
        task_ids_query=None,
        discover=False,
        tasklists=[],
        all_tasklists=False,
        stale_after=None,
        changed=True,
    )


class Batches:
    """Which batch is due: the sweep (first, then on its schedule) or the changes (when any)."""

    def __init__(self, options: RunOptions, schedule: Schedule) -> None:
        self.sweep = dataclasses.replace(options, changed=True)
        self.changes = changes_only(options)
        self.schedule = schedule
        self.sweeps_again = self.sweep != self.changes  # no ids, lists or --stale-after: no sweep
        self.next_sweep = 0.0  # the first batch is a sweep: it also finishes what a killed one left
        self.loaded_through = -1  # the newest journal position seen before the last batch started

    def due(self, newest: int, now: float) -> tuple[str, RunOptions] | None:
        """``(why, options)`` of the batch to run now, or None; ``newest``: the journal's position."""
        if now >= self.next_sweep:
            return "sweep", self.sweep
        if newest > self.loaded_through:
            return "changes", self.changes
        return None

    def again(self, why: str) -> None:
        """The batch could not load (the destination stayed busy): it is due again."""
        self.loaded_through = -1
        if why == "sweep":
            self.next_sweep = 0.0

    def started(self, why: str, newest: int, now: float) -> None:
        self.loaded_through = newest
        if why == "sweep":
            self.next_sweep = now + self.schedule.sweep_every if self.sweeps_again else float("inf")


@dataclass
class Stopping:
    """The signals heard (the first asks to stop, a second aborts) and the batch under way."""

    heard: list[int] = dataclasses.field(default_factory=list)
    event: threading.Event = dataclasses.field(default_factory=threading.Event)
    control: RunControl | None = None


@contextmanager
def signals_stop(stopping: Stopping, on_first: Callable[[], None]) -> Iterator[None]:
    """SIGTERM/SIGINT: the first stops the receiver and the batch (which loads what it fetched)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        stopping.heard.append(signum)
        if len(stopping.heard) > 1:
            raise Aborted(signum)
        stopping.event.set()
        if stopping.control is not None:
            stopping.control.inputs.stop.set()
        on_first()

    if threading.current_thread() is not threading.main_thread():  # only the main thread takes them
        yield
        return
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, handle) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def follow(flags: dict[str, Any], schedule: Schedule, say: Callable[[str], None] = _say) -> int:
    """Check the configuration, take the lock, receive and load until a signal; the exit code."""
    if flags.get("dry_run") or flags.get("json"):
        raise ConfigError("follow loads continuously: --dry-run and --json are for `run`")
    try:
        from .listen_settings import resolve_in_process
    except ImportError as exc:  # cryptography (and protobuf, for the long connection) are an extra
        raise events_extra_missing("follow", exc) from None
    options = RunOptions.resolve({**flags, "changed": True})
    settings = resolve_in_process(flags, long_connection=bool(flags.get("long_connection")))
    options.journal = settings.journal
    with fatal_errors_as_one_line():
        check_before_start(options)
    pipelines_dir = options.pipelines_dir or get_dlt_pipelines_dir()
    duckdb_file = checked_duckdb_file(options) if options.destination == DEFAULT_DESTINATION else None
    former = former_names(options.pipeline_name, pipelines_dir, PIPELINE_NAME)
    with run_lock(options.pipeline_name, pipelines_dir, duckdb_file, former):
        return Follower(options, settings, flags, schedule, say).serve()


class Follower:
    """The receiver thread and the batch loop, under the lock ``follow`` took."""

    def __init__(
        self,
        options: RunOptions,
        settings: Any,
        flags: dict[str, Any],
        schedule: Schedule,
        say: Callable[[str], None],
    ) -> None:
        from .follow_receiver import ReceiverThread

        self.options, self.schedule, self.say = options, schedule, say
        self.receiver = ReceiverThread(flags, settings, say)
        self.batches = Batches(options, schedule)
        self.stopping = Stopping()
        self.loaded = 0  # batches loaded (a number, never a list: the process runs for months)
        self.loaded_through = -1  # the journal position every change up to which is loaded

    def stop(self) -> None:
        """End after the batch under way (any thread), as a first SIGTERM does."""
        self.stopping.event.set()
        self.receiver.stop()

    def serve(self) -> int:
        try:
            journal = Journal(self.options.journal or "")
        except JournalError as exc:
            raise FatalError(str(exc)) from None
        with journal, signals_stop(self.stopping, self.receiver.stop):
            self.receiver.start()
            try:
                self.loop(journal)
            finally:
                self.receiver.stop()
                self.receiver.join(SHUTDOWN_SECONDS if len(self.stopping.heard) < 2 else 0)
        heard = self.stopping.heard
        self.say(
            f"stopped by {signal_name(heard[0]) if heard else 'request'}: {self.receiver.counts}; "
            f"{self.loaded} batch(es) loaded; changes not loaded yet stay in the journal for the next start"
        )
        return 0

    def loop(self, journal: Journal) -> None:
        """A batch when one is due and the last one started ``every`` seconds ago or more.

        The journal is looked at every ``POLL_SECONDS`` (one SQLite read): a change after a quiet
        spell is loaded at once, and under a steady stream batches start every ``every`` seconds
        (or back to back, when a batch takes longer).
        """
        last_start = -float("inf")
        while not self.stopping.event.is_set():
            self.receiver.check()
            now = time.monotonic()
            newest = journal.last_position()
            due = self.batches.due(newest, now) if now - last_start >= self.schedule.every else None
            if due is not None:
                why, options = due
                last_start = now
                self.batches.started(why, newest, now)
                self.load(why, options)
                if not self.stopping.event.is_set():  # a stopped batch leaves changes for the next start
                    self.loaded_through = newest
            pause = max(0.0, last_start + self.schedule.every - time.monotonic())
            self.stopping.event.wait(min(self.schedule.every, max(pause, POLL_SECONDS)))

    def load(self, why: str, options: RunOptions) -> None:
        control = RunControl()
        self.stopping.control = control
        if self.stopping.event.is_set():
            control.inputs.stop.set()
        timer = StepTimer()
        try:
            with duckdb_file_held(options):
                result = run(options, control, notify=self.say, on_step=timer.on_step, lock_held=True)
        except DestinationBusy as exc:  # an analyst held the file for the whole --lock-timeout
            if not self.stopping.event.is_set():
                self.batches.again(why)
                self.say(f"{exc}; follow goes on, and a later batch loads these changes")
                return
            self.say(f"the batch under way stopped: {exc}")
            return
        except FatalError as exc:
            if not self.stopping.event.is_set():
                raise
            self.say(f"the batch under way stopped: {exc}")
            return
        finally:
            self.stopping.control = None
        self.loaded += 1
        if not self.options.quiet:
            self.say(batch_line(why, result, timer.seconds))


class StepTimer:
    """The seconds of each step of a batch (``run``'s ``on_step``): where a slow batch spends them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def on_step(self, name: str, started: bool) -> None:
        if started:
            self._started[name] = time.monotonic()
        elif name in self._started:
            elapsed = time.monotonic() - self._started.pop(name)
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed


def batch_line(why: str, result: RunResult, steps: dict[str, float]) -> str:
    """``batch (changes): 12 task(s) loaded, 30 followers, in 1.4 s (load 0.5 s, …)``."""
    stats = result.stats
    tasks = sum(stats.tasks_by_status.values())
    fetch = result.step_seconds.get("extract")  # dlt's extract step: the requests and their rows
    steps = ({"fetch": fetch} if fetch is not None else {}) | steps
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items())
    seconds = result.elapsed_seconds
    line = f"batch ({why}): {tasks} task(s) loaded, {stats.followers} followers, in {seconds:.1f} s"
    return f"{line} ({parts})" if parts else line
