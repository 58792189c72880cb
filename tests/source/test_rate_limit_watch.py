"""The rate-limit watch: a streak of nothing but rate limits ends the run's requests, a total never does."""

from __future__ import annotations

import pytest

from feishu_tasks.endpoints import FOLLOWERS, LIST_TASKS
from feishu_tasks.errors import BudgetExhausted, RateLimitedTooLong
from feishu_tasks.settings import DEFAULT_MAX_RATE_LIMITED_SECONDS
from feishu_tasks.watches import RateLimitWatch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_streak_past_the_bound_stops_every_later_request() -> None:
    clock = Clock()
    watch = RateLimitWatch(10, clock)
    for second in range(10):
        clock.now = second
        watch.rate_limited(FOLLOWERS)
    clock.now = 10
    with pytest.raises(RateLimitedTooLong, match="followers_v1 endpoint for 10 s was a rate limit") as raised:
        watch.rate_limited(FOLLOWERS)
    assert isinstance(raised.value, BudgetExhausted)  # the rest waits for the next run, as past the cap
    assert "--max-rate-limited" in str(raised.value)
    with pytest.raises(RateLimitedTooLong):
        watch.check()  # no request starts after it, on any endpoint
    watch.answered(FOLLOWERS)
    with pytest.raises(RateLimitedTooLong):
        watch.check()  # a late answer does not take it back: the run is ending


def test_any_other_answer_ends_the_streak_so_a_long_healthy_run_never_stops() -> None:
    clock = Clock()
    watch = RateLimitWatch(10, clock)
    for second in range(0, 10_000, 3):  # rate limited for 2 s of every 3, for hours
        clock.now = second
        watch.rate_limited(FOLLOWERS)
        clock.now = second + 2
        watch.rate_limited(FOLLOWERS)
        watch.answered(FOLLOWERS)
    watch.check()


def test_endpoints_are_judged_apart() -> None:
    clock = Clock()
    watch = RateLimitWatch(10, clock)
    watch.rate_limited(LIST_TASKS)
    clock.now = 9
    watch.answered(FOLLOWERS)  # another endpoint's answer says nothing about this one
    watch.rate_limited(LIST_TASKS)
    clock.now = 10
    with pytest.raises(RateLimitedTooLong, match="list_tasks_v1"):
        watch.rate_limited(LIST_TASKS)


def test_the_default_ends_a_hopeless_run_within_minutes() -> None:
    assert 60 < DEFAULT_MAX_RATE_LIMITED_SECONDS <= 600  # above a quota window (60 s), minutes not days
