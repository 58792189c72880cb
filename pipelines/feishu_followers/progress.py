"""What a person sees while a run goes on: one live display on a terminal, a plain line in a log.

The CLI starts a display before the run and stops it after. A thread of the display reads the
fetch's live counters (``FetchStats``) four times a second, keeps the recent sends for the ETA
(``eta.py``) and shows them: on a terminal, rich redraws one block in place (listing, fetch with
bar and ETA, the step under way) and prints finished steps and the runner's notices above it;
anywhere else (cron, Airflow, Dagster logs), one plain line every ``progress_interval`` seconds,
without carriage returns or colours. ``--quiet`` shows only the runner's notices.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

import dlt
from dlt.common.runtime.collector import Collector
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from feishu_tasks.ratelimit import PacingRules
from feishu_tasks.settings import STATUS_FAILED, STATUS_FORBIDDEN, STATUS_INVALID
from feishu_tasks.stats import FetchStats

from .eta import SendHistory, fetch_seconds_left, requests_left, seconds_to_send
from .stderr import PREFIX, say

TICK_SECONDS = 0.25
RATE_SECONDS = 5.0  # "rate now": requests per second over this long
HELD_SECONDS = 2.0  # a wait for the pacing this long is worth saying


@dataclass(frozen=True)
class Figures:
    """One reading of the fetch, in the units a person reads."""

    elapsed: float  # seconds since the fetch began
    tasks_done: int  # with an outcome, or left for a later run by --max-requests
    tasks_total: int  # known so far
    listing: bool  # a listing still runs: the total may grow
    listing_pages: int
    requests: int
    rate_now: float  # requests per second, last few seconds
    pacing: PacingRules | None
    retries: int
    rate_limited: int
    failed: int
    invalid: int
    forbidden: int
    followers: int
    eta: float | None  # seconds until the fetch ends (a lower bound while listing); None: unknown
    held: float  # seconds the pacing holds the next request back (0: not held)
    finished: bool  # the fetch has ended, ...
    complete: bool  # ... with every task of the run done (not cut short by an error or a signal)

    @property
    def percent(self) -> int:
        return int(100 * self.tasks_done / self.tasks_total) if self.tasks_total else 0


def measure(stats: FetchStats, history: SendHistory, now: float) -> Figures:
    """The figures at ``now``; ``history`` holds the request counts sampled so far."""
    by_status = dict(stats.tasks_by_status)
    finished = stats.finished_at is not None
    rules = stats.pacing
    eta: float | None = 0.0 if finished else None
    held = 0.0
    if rules is not None and not finished:
        remaining = requests_left(
            expected_requests=stats.expected_requests,
            expected_requests_done=stats.expected_requests_done,
            task_requests_done=stats.task_requests_done,
            listing_pages=stats.listing_pages,
            retries=stats.retries,
            requests=stats.requests,
        )
        if stats.listing_done or stats.tasks_queued:  # while nothing is known, nothing to tell
            eta = fetch_seconds_left(remaining, now, history, rules)
        if remaining:
            held = seconds_to_send(1, now, history.send_times(), rules)
    end = stats.finished_at if stats.finished_at is not None else now
    tasks_done = sum(by_status.values()) + stats.skipped_by_budget
    return Figures(
        elapsed=max(0.0, end - stats.started_at),
        tasks_done=tasks_done,
        tasks_total=stats.tasks_queued,
        listing=not stats.listing_done and not finished,
        listing_pages=stats.listing_pages,
        requests=stats.requests,
        rate_now=history.rate(now, RATE_SECONDS),
        pacing=rules,
        retries=stats.retries,
        rate_limited=stats.rate_limited,
        failed=by_status.get(STATUS_FAILED, 0),
        invalid=by_status.get(STATUS_INVALID, 0),
        forbidden=by_status.get(STATUS_FORBIDDEN, 0),
        followers=stats.followers,
        eta=eta,
        held=held if held >= HELD_SECONDS else 0.0,
        finished=finished,
        complete=finished and stats.listing_done and tasks_done >= stats.tasks_queued,
    )


# ---------------------------------------------------------------------------------------- words
def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short, and the same in a log and on a terminal."""
    whole = int(round(max(0.0, seconds)))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def pacing_words(rules: PacingRules | None, sep: str = "") -> str:
    """``paced at 50/s and 1000/min`` (``sep`` groups thousands on a terminal)."""
    limits = []
    if rules and rules.max_rps:
        limits.append(f"{rules.max_rps:{sep}g}/s")
    if rules and rules.max_rpm:
        limits.append(f"{rules.max_rpm:{sep}g}/min")
    return "paced at " + " and ".join(limits) if limits else "not paced"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def held_words(figures: Figures) -> str:
    """Why nothing is sent: the per-minute quota, not the network."""
    return f"waiting {duration(figures.held)} for the per-minute quota"


def eta_words(figures: Figures) -> str:
    if figures.eta is None:
        return "ETA unknown"
    return f"ETA {'>=' if figures.listing else ''}{duration(figures.eta)}"


def format_line(figures: Figures | None, step: tuple[str, float] | None) -> str | None:
    """The plain progress line for a log; None when there is nothing to say yet.

    ``figures`` is None before the fetch begins; ``step`` is the step under way and for how long.
    """
    if figures is not None and not figures.finished:
        f = figures
        pacing = pacing_words(f.pacing) + (f"; {held_words(f)}" if f.held else "")
        return (
            f"{PREFIX}fetch {duration(f.elapsed)}: "
            f"tasks {f.tasks_done}/{f.tasks_total}{'+' if f.listing else ''} ({f.percent}%), "
            f"requests {f.requests} at {f.rate_now:.1f}/s ({pacing}), "
            f"retries {f.retries} (429s {f.rate_limited}), "
            f"failed {f.failed}, invalid {f.invalid}, forbidden {f.forbidden}, {eta_words(f)}"
        )
    if step is not None:
        name, seconds = step
        done = f" (fetch done: {figures.tasks_done} tasks in {duration(figures.elapsed)})" if figures else ""
        return f"{PREFIX}{name} {duration(seconds)}{done}"
    return None


def fetch_done_words(figures: Figures, stopped: bool = False) -> str:
    """The fetch, in one line of a terminal, once it is over."""
    f = figures
    tasks = f"fetch stopped at {f.tasks_done:,}/{f.tasks_total:,}" if stopped else f"fetched {f.tasks_done:,}"
    return (
        f"{tasks} tasks in {duration(f.elapsed)}: {f.requests:,} requests (retries {f.retries:,}), "
        f"failed {f.failed:,} · invalid {f.invalid:,} · forbidden {f.forbidden:,}"
    )


# -------------------------------------------------------------------------------------- displays
class Display:
    """The runner's notices only (``--quiet``, dry runs); the base of the displays that show more.

    ``tick`` reads the counters and shows them; a thread calls it while the display runs, and
    tests call it with a clock of their own.
    """

    ticking = False  # whether a thread reads the counters while the run goes on

    def __init__(self, stats: FetchStats, clock: Callable[[], float] = time.monotonic) -> None:
        self.stats = stats
        self.clock = clock
        self.history = SendHistory()
        self.figures: Figures | None = None
        self.step: tuple[str, float] | None = None  # the step under way, since when
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._seeded = False
        self._broken = False

    # -- what the runner calls
    def notify(self, line: str) -> None:
        """A notice of the runner (e.g. what it waits for): always shown, never overwritten."""
        say(line)

    def on_step(self, name: str, started: bool) -> None:
        """A step after the fetch starts or ends (``run(..., on_step=)``)."""
        with self._lock, self._guarded():
            if self._broken:
                return
            now = self.clock()
            if started:
                self.step = (name, now)
            elif self.step is not None:
                self._read(now)  # the fetch may have ended since the last tick: tell it first
                self.step_done(self.step[0], now - self.step[1])
                self.step = None

    # -- the thread
    def start(self) -> None:
        if self.ticking:
            self._thread = threading.Thread(target=self._run, name="feishu-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self.tick()
        with self._lock, self._guarded():
            self.close()  # even a broken display gives the terminal back

    def _run(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            self.tick()

    def tick(self) -> None:
        """Read the counters and show them."""
        with self._lock, self._guarded():
            if self._broken:
                return
            now = self.clock()
            self._read(now)
            self.show(now)

    def _read(self, now: float) -> None:
        if self.stats.pacing is None:
            return  # the fetch has not begun
        if not self._seeded:  # no request was answered when the fetch began
            self._seeded = True
            self.history.record(self.stats.started_at, 0)
        self.history.record(now, self.stats.requests)
        self.figures = measure(self.stats, self.history, now)

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """A display that fails goes quiet (``_broken``); the run goes on."""
        try:
            yield
        except Exception:
            self._broken = True

    # -- what a display adds
    def show(self, now: float) -> None:
        pass

    def step_done(self, name: str, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Display:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LineDisplay(Display):
    """One plain line every ``interval`` seconds (logs: no carriage returns, no colours)."""

    ticking = True

    def __init__(
        self,
        stats: FetchStats,
        write: Callable[[str], None],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stats, clock)
        self.write = write
        self.interval = interval
        self._next_line = clock() + interval

    def show(self, now: float) -> None:
        if not self.interval or now < self._next_line:
            return
        self._next_line = max(self._next_line + self.interval, now)
        step = (self.step[0], now - self.step[1]) if self.step else None
        line = format_line(self.figures, step)
        if line:
            self.write(line)


class LiveDisplay(Display):
    """The terminal: one block redrawn in place, finished steps and notices printed above it."""

    ticking = True

    def __init__(
        self, stats: FetchStats, console: Console, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(stats, clock)
        self.console = console
        self.live = Live(console=console, auto_refresh=False, transient=True)
        self.spinner = Spinner("dots", style="cyan")
        self._listing_told = False
        self._fetch_told = False

    def start(self) -> None:
        self.live.start()
        super().start()

    def notify(self, line: str) -> None:
        self.console.print(f"{PREFIX}{line}", markup=False, highlight=False, soft_wrap=True)

    def step_done(self, name: str, seconds: float) -> None:
        self.step = None
        self.show(self.clock(), Text.assemble(("✓ ", "green"), f"{name} {seconds:.1f} s"))

    def show(self, now: float, *done: Text) -> None:
        """Redraw; ``done`` lines and the milestones reached are printed above, for good."""
        self.live.update(self.render(now), refresh=True)  # first: a print redraws the block below it
        for line in [*self._milestones(), *done]:
            self.console.print(line, soft_wrap=True)

    def close(self) -> None:
        if self.figures is not None and not self._fetch_told:
            self._fetch_told = True  # the run ended (an error, a signal) before the fetch did
            stopped = Text.assemble(("✗ ", "red"), fetch_done_words(self.figures, stopped=True))
            self.console.print(stopped, soft_wrap=True)
        self.live.stop()

    def _milestones(self) -> list[Text]:
        """The listing and the fetch, once each has ended; each is told once."""
        f, lines = self.figures, []
        if f is not None and self.stats.listing_pages and self.stats.listing_done and not self._listing_told:
            self._listing_told = True
            pages = plural(f.listing_pages, "page")
            words = f"listing done in {duration(f.elapsed)}: {pages}, {f.tasks_total:,} tasks to fetch"
            lines.append(Text.assemble(("✓ ", "green"), words))
        if f is not None and f.finished and not self._fetch_told:
            self._fetch_told = True
            if f.complete:
                lines.append(Text.assemble(("✓ ", "green"), fetch_done_words(f)))
            else:  # an error or a signal cut it short
                lines.append(Text.assemble(("✗ ", "red"), fetch_done_words(f, stopped=True)))
        return lines

    def render(self, now: float) -> RenderableType:
        """The block under way: the listing, the fetch, the step; what has ended is above it."""
        rows: list[RenderableType] = []
        f = self.figures
        if f is not None and f.listing and self.stats.listing_pages:
            rows.append(
                self._spun(
                    f"listing tasks: {plural(f.listing_pages, 'page')}, {f.tasks_total:,} tasks so far"
                )
            )
        if f is not None and not f.finished:
            rows.append(self._fetch_rows(f))
        if self.step is not None:
            rows.append(self._spun(f"{self.step[0]} {now - self.step[1]:.1f} s"))
        elif f is None:
            rows.append(self._spun("starting"))
        return Group(*rows)

    def _spun(self, text: str) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_row(self.spinner, Text(text))
        return grid

    def _fetch_rows(self, f: Figures) -> Group:
        bar = Table.grid(padding=(0, 1))
        total = f"{f.tasks_total:,}{'+' if f.listing else ''}"
        bar.add_row(
            self.spinner,
            Text("fetching followers", style="bold"),
            ProgressBar(total=max(f.tasks_total, 1), completed=f.tasks_done, width=30),
            Text(f"{f.tasks_done:,}/{total} tasks"),
            Text(f"{f.percent}%"),
            Text(eta_words(f), style="cyan"),
        )
        pacing = pacing_words(f.pacing, ",")
        requests = Text(
            f"  requests {f.requests:,} · {f.rate_now:.1f}/s now · {pacing} · "
            f"retries {f.retries:,} · 429s {f.rate_limited:,}"
        )
        outcomes = Text.assemble(
            "  ",
            (f"failed {f.failed:,}", "red" if f.failed else ""),
            f" · invalid {f.invalid:,} · forbidden {f.forbidden:,} · followers {f.followers:,}",
        )
        rows: list[RenderableType] = [bar, requests, outcomes]
        if f.held:
            rows.append(Text(f"  {held_words(f)} (the quota, not the network)", style="yellow"))
        return Group(*rows)


def display_for(stats: FetchStats, quiet: bool, interval: float, stream: TextIO | None = None) -> Display:
    """The display this run gets: live on a terminal, lines elsewhere, notices only when quiet."""
    if quiet:
        return Display(stats)
    out = stream if stream is not None else sys.stderr
    console = Console(file=out)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveDisplay(stats, console)

    def write(line: str) -> None:
        print(line, file=out, flush=True)

    return LineDisplay(stats, write, interval)


# ------------------------------------------------------------------------------------- dlt's steps
# dlt's collector interface, turned into the steps a progress display shows.
#
# dlt tells a collector when it starts and stops extracting, normalizing and loading; the
# extract is our fetch, which the display follows through ``FetchStats`` instead. No counters
# are kept: the display has better ones.
class StepCollector(Collector):
    """Calls ``on_step("normalize" | "load", started)`` around dlt's steps of those names."""

    STEPS = ("normalize", "load")

    def __init__(self, on_step: Callable[[str, bool], None]) -> None:
        self.on_step = on_step
        self.step = ""
        self._running: str | None = None

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        pass

    def _start(self, step: str) -> None:
        name = step.split(" ", 1)[0].lower()  # "Load feishu_tasks in 1795620443.81" → "load"
        self._running = name if name in self.STEPS else None
        if self._running:
            self.on_step(self._running, True)

    def _stop(self) -> None:
        if self._running:
            self.on_step(self._running, False)
            self._running = None


def dlt_log_collector() -> Collector:
    """dlt's own progress log (``--verbose``), with memory figures only where psutil is installed.

    Without psutil, dlt's collector would warn about it on every run, pointing at our code.
    """
    has_psutil = importlib.util.find_spec("psutil") is not None
    return dlt.progress.log(10, sys.stderr, dump_system_stats=has_psutil)
