"""The ETA against the limiter it predicts: PacingLimiter on a fake clock, no waiting.

The first ~980 requests go at ~49/s, then the minute window holds ~980 per 60.1 s; an ETA from a
moving average is wrong most of that time, one from the limiter's rules is not.
"""

from __future__ import annotations

import pytest

from feishu_followers.eta import (
    SendHistory,
    fetch_seconds_left,
    network_rate,
    paced_by,
    requests_left,
    seconds_to_send,
)
from feishu_tasks.ratelimit import PacingLimiter, PacingRules

from ..fakes import FakeClock, send_times


def feishu_limiter(
    clock: FakeClock, max_rps: float | None = 50, max_rpm: float | None = 1000
) -> PacingLimiter:
    return PacingLimiter(max_rps, max_rpm, clock=clock, sleep=clock.sleep)


def test_rules_are_what_the_limiter_enforces() -> None:
    rules = feishu_limiter(FakeClock()).rules
    assert rules.max_rps == 50 and rules.max_rpm == 1000
    assert rules.interval == pytest.approx(1 / 49)
    assert rules.minute_limit == 980
    assert rules.window_seconds == pytest.approx(60.1)
    off = PacingLimiter(None, 0).rules
    assert off.interval == 0 and off.minute_limit is None and off.max_rpm is None


def test_fresh_run_first_burst_then_one_window_per_block() -> None:
    rules = feishu_limiter(FakeClock()).rules
    assert seconds_to_send(1, 0.0, (), rules) == 0.0
    assert seconds_to_send(980, 0.0, (), rules) == pytest.approx(979 / 49)  # ~20 s at ~49/s
    assert seconds_to_send(981, 0.0, (), rules) == pytest.approx(60.1)  # the window holds the 981st
    assert seconds_to_send(1960, 0.0, (), rules) == pytest.approx(60.1 + 979 / 49)
    assert seconds_to_send(1961, 0.0, (), rules) == pytest.approx(120.2)
    assert seconds_to_send(3314, 0.0, (), rules) == pytest.approx(3 * 60.1 + 373 / 49)
    assert seconds_to_send(0, 0.0, (), rules) == 0.0


@pytest.mark.parametrize("total", [500, 2500, 3314])
@pytest.mark.parametrize("share", [0.0, 0.1, 0.33, 0.5, 0.9])
def test_prediction_matches_the_limiter_from_any_point(total: int, share: float) -> None:
    """Stop the clock after ``share`` of the sends: the time left is what the limiter then takes."""
    clock = FakeClock()
    limiter = feishu_limiter(clock)
    times = send_times(limiter, clock, total)
    done = int(total * share)
    now = times[done - 1] if done else times[0]
    predicted = seconds_to_send(total - done, now, times[:done], limiter.rules)
    assert predicted == pytest.approx(times[-1] - now, abs=1e-6)


@pytest.mark.parametrize(("max_rps", "max_rpm"), [(50, None), (None, 1000), (10, 1000), (50, 300)])
def test_prediction_matches_other_limits(max_rps: float | None, max_rpm: float | None) -> None:
    clock = FakeClock()
    limiter = feishu_limiter(clock, max_rps, max_rpm)
    times = send_times(limiter, clock, 1500)
    for done in (0, 200, 700, 1200):
        now = times[done - 1] if done else times[0]
        predicted = seconds_to_send(1500 - done, now, times[:done], limiter.rules)
        assert predicted == pytest.approx(times[-1] - now, abs=1e-6), done


def test_a_history_sampled_four_times_a_second_is_close_enough() -> None:
    """The display sees a request counter, not send times: still within a second of the truth."""
    clock = FakeClock()
    limiter = feishu_limiter(clock)
    times = send_times(limiter, clock, 3314)
    start = times[0]
    for at in (25.0, 61.0, 100.0, 150.0):
        history = SendHistory()
        history.record(start, 0)
        sample = start
        while sample < start + at:
            sample = min(sample + 0.25, start + at)
            history.record(sample, sum(1 for t in times if t <= sample))
        done = sum(1 for t in times if t <= start + at)
        left = fetch_seconds_left(3314 - done, start + at, history, limiter.rules)
        truth = times[-1] - (start + at)
        assert left == pytest.approx(truth, abs=1.0), at


def test_network_slower_than_the_pacing_sets_the_pace() -> None:
    rules = feishu_limiter(FakeClock()).rules
    history = SendHistory()
    for second in range(11):
        history.record(float(second), 10 * second)  # 10 requests/s: latency, not the quota
    assert network_rate(history, rules) == pytest.approx(10.0)
    assert fetch_seconds_left(500, 10.0, history, rules) == pytest.approx(50.0, abs=0.2)
    paced = SendHistory()
    for second in range(11):
        paced.record(float(second), 48 * second)  # about the paced rate: the pacing rules
    assert network_rate(paced, rules) is None


def test_without_any_pacing_only_the_observed_rate_tells() -> None:
    rules = PacingLimiter(None, None).rules
    history = SendHistory()
    assert fetch_seconds_left(100, 0.0, history, rules) is None
    for second in range(6):
        history.record(float(second), 200 * second)
    assert fetch_seconds_left(1000, 5.0, history, rules) == pytest.approx(5.0, abs=0.01)


def test_send_history_spreads_counts_and_forgets_the_old() -> None:
    history = SendHistory(span=10.0)
    history.record(0.0, 0)
    history.record(1.0, 4)
    assert history.send_times() == [0.25, 0.5, 0.75, 1.0]
    assert history.rate(1.0, 5.0) == 4.0
    for second in range(2, 30):
        history.record(float(second), 4 * second)
    assert min(history.send_times()) > 18.0  # older than the span (and one sample) is gone
    history.record(30.0, 0)  # a new counter starts over
    assert history.send_times() == []
    assert history.peak_rate() is None


@pytest.mark.parametrize(
    ("figures", "left"),
    [
        # nothing finished yet: last run's counts as they are (1 per unknown task) plus the listing
        (dict(expected_requests=3000, expected_requests_done=0, task_requests_done=0, listing_pages=30,
              retries=0, requests=30), 3000),
        # finished tasks took 10% more than expected (a first run): the rest is scaled alike
        (dict(expected_requests=3000, expected_requests_done=1000, task_requests_done=1100, listing_pages=30,
              retries=0, requests=1130), 2200),
        # an answered retry (a 429) changes nothing; a retry without an answer is still to send
        (dict(expected_requests=100, expected_requests_done=50, task_requests_done=50, listing_pages=0,
              retries=3, requests=53), 50),
        (dict(expected_requests=10, expected_requests_done=10, task_requests_done=10, listing_pages=0,
              retries=0, requests=12), 0),
    ],
)  # fmt: skip
def test_requests_left(figures: dict[str, int], left: int) -> None:
    assert requests_left(**figures) == left


def test_paced_by_names_the_limit_that_held_the_run() -> None:
    rules = feishu_limiter(FakeClock()).rules
    assert paced_by(3314, 190.0, rules) == "max_rpm"  # the minute window: ~3 minutes
    assert paced_by(300, 6.5, rules) == "max_rps"  # 300 at ~49/s
    assert paced_by(300, 60.0, rules) is None  # the network was slower than the pacing
    assert paced_by(10, 0.3, rules) is None  # too short to say
    assert paced_by(3314, 190.0, PacingRules(None, None, 0.0, None, 60.1)) is None
