"""The pacing limiter on a fake clock: exact send times, no waiting.

Narrow unit cases; the end-to-end check (a paced run against a simulator quota sees no 429)
is in test_faults.py.
"""

from __future__ import annotations

import pytest

from feishu_tasks.ratelimit import PacingLimiter

from ..fakes import FakeClock, send_times


def most_in_any_window(times: list[float], span: float) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - span:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_per_second_limit_is_an_even_spacing_not_a_burst() -> None:
    clock = FakeClock()
    times = send_times(PacingLimiter(50, None, clock=clock, sleep=clock.sleep), clock, 200)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) == pytest.approx(1 / 49)
    assert most_in_any_window(times, 1.0) <= 50  # the quota; 49 plus float ties


def test_per_minute_window_allows_the_per_second_pace_then_settles() -> None:
    clock = FakeClock()
    limiter = PacingLimiter(50, 1000, clock=clock, sleep=clock.sleep)
    times = send_times(limiter, clock, 2500)
    assert most_in_any_window(times, 60.0) == limiter.minute_limit == 980
    assert most_in_any_window(times, 1.0) <= 50  # the quota; 49 plus float ties
    assert times[979] - times[0] == pytest.approx(979 / 49)  # the first 980 at full pace
    # then each send waits exactly for the one 980 before it to leave the window (60 s plus the
    # 0.1 s slack for arrival jitter): no other time lost
    assert times[980] - times[0] == pytest.approx(60.1)
    assert times[1960] - times[980] == pytest.approx(60.1)


def test_no_limits_never_sleeps() -> None:
    clock = FakeClock()
    times = send_times(PacingLimiter(None, None, clock=clock, sleep=clock.sleep), clock, 100)
    assert set(times) == {1000.0}


def test_pause_holds_every_request_back() -> None:
    clock = FakeClock()
    limiter = PacingLimiter(None, None, clock=clock, sleep=clock.sleep)
    limiter.pause(2.5)
    times = send_times(limiter, clock, 3)
    assert min(times) == pytest.approx(1002.5)


def test_adapt_lowers_the_limits_the_server_announces() -> None:
    clock = FakeClock()
    limiter = PacingLimiter(50, 1000, headroom=1.0, clock=clock, sleep=clock.sleep)
    limiter.adapt(10, 1)  # a per-second window of 10
    assert limiter.interval == pytest.approx(0.1)
    limiter.adapt(100, 30)  # a reset of 30 s: the minute window is 100
    assert limiter.minute_limit == 100
    limiter.adapt(2000, 30)  # never raised above what is configured
    limiter.adapt(100, 0)
    assert limiter.minute_limit == 100 and limiter.interval == pytest.approx(0.1)


def test_an_announced_limit_never_lowers_pacing_below_a_tenth_of_the_configured() -> None:
    clock = FakeClock()
    limiter = PacingLimiter(50, 1000, headroom=1.0, clock=clock, sleep=clock.sleep)
    limiter.adapt(1, 30)  # "1 per minute": a run of 10,000 tasks would take a week
    assert limiter.minute_limit == 100
    limiter.adapt(1, 1)
    assert limiter.interval == pytest.approx(1 / 5)
    unpaced = PacingLimiter(None, None, headroom=1.0, clock=clock, sleep=clock.sleep)
    unpaced.adapt(1, 30)
    assert unpaced.minute_limit == 100
