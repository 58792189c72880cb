"""The progress display on a clock and counters of our own: exact log lines, JSON, the live block.

A scripted fetch of 3,000 tasks, one request each, sent when ``PacingLimiter`` at Feishu's default
limits lets them go: 980 in the first 20 s, then 980 per 60.1 s. What a log shows of it is
asserted to the character.
"""

from __future__ import annotations

import bisect
import io
import json

import pytest
from rich.console import Console

from feishu_followers.options import RunOptions, parsed
from feishu_followers.progress import Display, LineDisplay, LiveDisplay, display_for, duration, format_line
from feishu_followers.run import RunResult
from feishu_followers.summary import format_json, format_summary, summary_json
from feishu_tasks.errors import ConfigError
from feishu_tasks.ratelimit import PacingLimiter
from feishu_tasks.stats import FetchStats

from ..fakes import FakeClock, send_times

START = 1000.0
TICK = 0.25


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def fetching_stats() -> FetchStats:
    """3,000 given tasks (one request each, as far as anyone knows), paced at Feishu's quota."""
    stats = FetchStats(started_at=START, tasks_queued=3000, expected_requests=3000, listing_done=True)
    stats.pacing = PacingLimiter(50, 1000).rules
    return stats


def paced_sends(count: int) -> list[float]:
    """When the limiter lets ``count`` requests go, the first at START."""
    clock = FakeClock()
    times = send_times(PacingLimiter(50, 1000, clock=clock, sleep=clock.sleep), clock, count)
    return [START + t - times[0] for t in times]


SENDS = paced_sends(3000)  # the last at START + 181.5 s


def advance(stats: FetchStats, display: Display, clock: Clock, until: float) -> None:
    """The scripted fetch up to ``until`` seconds in, the display reading it every tick."""
    while clock.now < START + until:
        clock.now = round(clock.now + TICK, 6)
        done = bisect.bisect_right(SENDS, clock.now)  # answered at once
        stats.requests = done
        stats.expected_requests_done = stats.task_requests_done = done
        stats.tasks_by_status = {
            "ok": done - min(done, 10),
            "failed": min(done, 7),
            "no_permission": min(done, 3),
        }
        display.tick()


def test_log_lines_every_interval_exactly() -> None:
    clock, stats, lines = Clock(), fetching_stats(), []
    display = LineDisplay(stats, lines.append, interval=30.0, clock=clock)
    advance(stats, display, clock, until=29.75)
    assert lines == []  # nothing before the first interval
    advance(stats, display, clock, until=30.0)
    assert lines == [
        "feishu-followers: fetch 30s: tasks 980/3000 (32%), requests 980 at 0.0/s "
        "(paced at 50/s and 1000/min; waiting 30s for the per-minute quota), retries 0 (429s 0), "
        "failed 7, invalid 0, forbidden 3, ETA 2m32s"  # the last send: at 181.5 s
    ]
    advance(stats, display, clock, until=95.0)
    assert len(lines) == 3 and lines[1].startswith("feishu-followers: fetch 1m00s: ")
    assert [line.rsplit("ETA ", 1)[1] for line in lines] == [
        "2m32s",
        "2m02s",
        "1m32s",
    ]  # 151.5, 121.5, 91.5 s
    assert not any(mark in "".join(lines) for mark in ("\r", "\x1b"))


def test_log_line_while_listing_and_after_the_fetch() -> None:
    clock, stats, lines = Clock(), fetching_stats(), []
    stats.listing_done, stats.listing_pages = False, 12
    display = LineDisplay(stats, lines.append, interval=10.0, clock=clock)
    advance(stats, display, clock, until=10.0)
    assert lines[0] == (
        "feishu-followers: fetch 10s: tasks 491/3000+ (16%), requests 491 at 49.0/s (paced at 50/s and "
        "1000/min), retries 0 (429s 0), failed 7, invalid 0, forbidden 3, ETA >=2m52s"
    )
    stats.finished_at = clock.now = START + 188.0
    display.on_step("load", True)
    clock.now = START + 200.0
    display.tick()
    assert lines[-1] == "feishu-followers: load 12s (fetch done: 491 tasks in 3m08s)"


def test_no_lines_at_interval_zero() -> None:
    clock, stats, lines = Clock(), fetching_stats(), []
    display = LineDisplay(stats, lines.append, interval=0.0, clock=clock)
    advance(stats, display, clock, until=100.0)
    assert lines == []


def test_before_the_fetch_there_is_nothing_to_say() -> None:
    assert format_line(None, None) is None
    assert format_line(None, ("load", 3.0)) == "feishu-followers: load 3s"


@pytest.mark.parametrize(
    ("seconds", "words"), [(0.4, "0s"), (59.6, "1m00s"), (188, "3m08s"), (3725, "1h02m")]
)
def test_durations(seconds: float, words: str) -> None:
    assert duration(seconds) == words


def test_live_block_shows_the_figures_and_why_it_waits() -> None:
    clock, stats = Clock(), fetching_stats()
    screen = Console(file=io.StringIO(), width=120, force_terminal=True, color_system=None)
    display = LiveDisplay(stats, screen, clock=clock)
    advance(stats, display, clock, until=30.0)
    shot = Console(file=io.StringIO(), width=120, color_system=None, record=True)
    shot.print(display.render(clock.now))
    text = shot.export_text()
    assert "fetching followers" in text and "980/3,000 tasks" in text and "32%" in text
    assert "ETA 2m32s" in text
    assert "requests 980 · 0.0/s now · paced at 50/s and 1,000/min · retries 0 · 429s 0" in text
    assert "failed 7 · invalid 0 · forbidden 3" in text
    assert "waiting 30s for the per-minute quota (the quota, not the network)" in text


def test_live_display_prints_steps_and_the_fetch_above_the_block() -> None:
    clock, stats = Clock(), fetching_stats()
    out = io.StringIO()
    screen = Console(file=out, width=120, force_terminal=True, color_system=None)
    display = LiveDisplay(stats, screen, clock=clock)
    display.start()
    try:
        advance(stats, display, clock, until=2.0)
        stats.tasks_queued = stats.tasks_done  # a run of 99 tasks, all fetched
        stats.finished_at = clock.now
        display.notify("waiting up to 300 s for the DuckDB file")
        display.on_step("load", True)
        clock.now += 1.5
        display.on_step("load", False)
    finally:
        display.stop()
    text = out.getvalue()
    assert "feishu-followers: waiting up to 300 s for the DuckDB file" in text
    fetched = text.index(
        "✓ fetched 99 tasks in 2s: 99 requests (retries 0), failed 7 · invalid 0 · forbidden 3"
    )
    assert fetched < text.index("✓ load 1.5 s")


def test_a_fetch_cut_short_is_not_told_as_done() -> None:
    clock, stats = Clock(), fetching_stats()
    out = io.StringIO()
    display = LiveDisplay(
        stats, Console(file=out, width=120, force_terminal=True, color_system=None), clock=clock
    )
    display.start()
    advance(stats, display, clock, until=2.0)
    stats.finished_at = clock.now  # a fatal error: the run ends, 2,901 tasks not fetched
    display.stop()
    assert "✗ fetch stopped at 99/3,000 tasks in 2s: 99 requests (retries 0)" in out.getvalue()
    assert "✓ fetched" not in out.getvalue()


def test_progress_interval_is_a_duration() -> None:
    assert parsed("progress_interval", "5m") == 300.0 and parsed("progress_interval", "0") == 0.0
    with pytest.raises(ConfigError, match="SOURCES__FEISHU_TASKS__PROGRESS_INTERVAL"):
        parsed("progress_interval", "often")


def test_display_for_a_pipe_is_lines_and_quiet_is_nothing() -> None:
    stats = FetchStats()
    assert isinstance(display_for(stats, quiet=False, interval=30, stream=io.StringIO()), LineDisplay)
    assert type(display_for(stats, quiet=True, interval=30, stream=io.StringIO())) is Display


# ------------------------------------------------------------------------------------ summary
def finished_result(failed: int = 0) -> RunResult:
    stats = fetching_stats()
    stats.requests, stats.finished_at, stats.followers = 3314, START + 188.4, 29_000
    stats.tasks_by_status = {"ok": 3000 - failed, "failed": failed} if failed else {"ok": 3000}
    options = RunOptions(duckdb_path="f.duckdb")
    return RunResult(options, stats, 194.25, False, load_ids=["1795620443.81"], step_seconds={"load": 1.5})


def test_summary_says_the_run_was_paced_and_where_to_look() -> None:
    lines = format_summary(finished_result(failed=12)).splitlines()
    assert lines[-2:] == [
        "  paced at 16.7 req/s: Feishu's 1,000/min quota; see --max-rpm",
        "  next: 12 task(s) not ok; see select * from feishu_tasks.task_fetch_status where status <> 'ok'",
    ]
    fast = finished_result()
    fast.stats.finished_at = START + 900.0  # far slower than the pacing allows: the network
    assert "paced" not in format_summary(fast) and "next:" not in format_summary(fast)


def test_summary_names_a_limit_set_below_the_quota() -> None:
    result = finished_result()
    result.stats.pacing = PacingLimiter(50, 500).rules
    result.stats.finished_at = START + 6 * 60.1 + 30
    assert (
        format_summary(result).splitlines()[-1]
        == "  paced at 8.3 req/s: --max-rpm 500 (Feishu's quota: 1,000/min)"
    )


def test_json_summary_fields() -> None:
    result = finished_result(failed=12)
    assert summary_json(result, stopped_by="SIGTERM") == {
        "destination": "duckdb",
        "duckdb": "f.duckdb",
        "dataset": "feishu_tasks",
        "elapsed_seconds": 194.25,
        "fetch_seconds": 188.4,
        "stopped_by": "SIGTERM",
        "tasks": {"total": 3000, "ok": 2988, "invalid_task": 0, "no_permission": 0, "failed": 12},
        "tasklists": {},
        "listing_problems": [],
        "not_fetched": {"max_requests": 0, "stopped": 0, "rate_limited": 0},
        "rate_limit_stop": None,
        "followers": 29000,
        "requests": 3314,
        "retries": 0,
        "rate_limited": 0,
        "token_refreshes": 0,
        "load_ids": ["1795620443.81"],
        "pacing": {"max_rps": 50, "max_rpm": 1000, "paced_by": "max_rpm", "paced_rps": 16.667},
        "step_seconds": {"load": 1.5},
        "stale_after_run": None,
        "completed_pending": False,
    }
    line = format_json(result)
    assert "\n" not in line and json.loads(line)["stopped_by"] is None
