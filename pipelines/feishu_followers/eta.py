"""How long a paced fetch has left: the limiter's rules played forward, not a moving average.

Under Feishu's two quotas a moving average is wrong most of the time: a long run sends its first
~980 requests at ~49/s, then waits for the minute window, then sends ~980 per 60.1 s. What is
left follows from the requests still to send, the limiter's rules (``PacingRules``) and the sends
of the last minute, which hold the window. These functions are pure: the caller passes the time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from feishu_tasks.ratelimit import PacingRules

# Below this share of the paced rate, the API (latency, concurrency) limits the run, not the pacing.
NETWORK_BOUND_SHARE = 0.9
# A run within this factor of the fastest the pacing allows was held by the pacing.
PACED_SLACK = 1.25


def seconds_to_send(
    remaining: int,
    now: float,
    recent_sends: Sequence[float],
    rules: PacingRules,
    network_rate: float | None = None,
) -> float:
    """Seconds from ``now`` until the last of ``remaining`` requests goes out under ``rules``.

    ``recent_sends``: send times up to ``now``, oldest first (only the last minute's matter).
    ``network_rate``: requests/s the API keeps up with, when that is slower than the pacing.
    Plays ``PacingLimiter``'s two rules: sends at least ``interval`` apart, and at most
    ``minute_limit`` of them in any ``window_seconds``. Past the first window's worth of sends
    each block repeats the one before it, one window later, so the cost is at most one window's
    worth of steps however many requests are left.
    """
    if remaining <= 0:
        return 0.0
    interval = rules.interval
    if network_rate:
        interval = max(interval, 1.0 / network_rate)
    first = max(now, recent_sends[-1] + interval) if recent_sends else now
    limit, span = rules.minute_limit, rules.window_seconds
    if limit is None:
        return first + (remaining - 1) * interval - now
    held = [sent for sent in recent_sends[-limit:] if sent > now - span]  # what holds the window
    sends: list[float] = []
    for k in range(min(remaining, limit)):
        at = first if k == 0 else sends[-1] + interval
        back = len(held) + k - limit  # the send ``limit`` sends before this one
        if back >= 0:
            at = max(at, (held[back] if back < len(held) else sends[back - len(held)]) + span)
        sends.append(at)
    if remaining <= limit:
        return sends[remaining - 1] - now
    if limit * interval < span:  # a block of ``limit`` sends waits for the block before to leave
        rounds, index = divmod(remaining - 1, limit)
        return sends[index] + rounds * span - now
    return sends[-1] + (remaining - limit) * interval - now  # the window never fills


def requests_left(
    *,
    expected_requests: int,
    expected_requests_done: int,
    task_requests_done: int,
    listing_pages: int,
    retries: int,
    requests: int,
) -> int:
    """Requests still to send for the tasks known so far (``FetchStats`` fields).

    ``expected_requests`` comes from last run's follower counts (1 for a task never fetched);
    the finished tasks show how far off that is (a first run has tasks of 2 or more pages), and
    the tasks left are scaled by the same ratio. Every answer so far (``requests``) was a
    listing page, a task's request or a retry; the rest is what is left.
    """
    ratio = task_requests_done / expected_requests_done if expected_requests_done >= 20 else 1.0
    tasks_total = task_requests_done + (expected_requests - expected_requests_done) * ratio
    return max(0, round(tasks_total + listing_pages + retries - requests))


def paced_by(requests: int, fetch_seconds: float, rules: PacingRules) -> Literal["max_rps", "max_rpm"] | None:
    """Which limit made a fetch of ``requests`` take ``fetch_seconds``, or None: not the pacing.

    The pacing held the run when the run took about as long as the pacing allows at best; the
    per-minute limit did if the run sent more than one window's worth.
    """
    fastest = seconds_to_send(requests, 0.0, (), rules)
    if requests < 2 or fastest < 1.0 or fetch_seconds > fastest * PACED_SLACK:
        return None
    if rules.minute_limit is not None and requests > rules.minute_limit:
        return "max_rpm"
    return "max_rps" if rules.interval else None


@dataclass
class _Sample:
    at: float
    count: int


class SendHistory:
    """Send times of the last window, rebuilt from a request counter sampled a few times a second.

    The fetch counts answers (``FetchStats.requests``), not send times; the answers counted
    between two samples are spread evenly between them. An answer lags its send by the latency
    (tens of milliseconds here): close enough for an ETA, and no hook in the request path.
    """

    def __init__(self, span: float = 61.0) -> None:
        self.span = span
        self._samples: deque[_Sample] = deque()

    def record(self, now: float, count: int) -> None:
        """The counter read at ``now``; samples older than the span (but one) are dropped."""
        if self._samples and count < self._samples[-1].count:
            self._samples.clear()  # a new counter: start over
        self._samples.append(_Sample(now, count))
        while len(self._samples) > 2 and self._samples[1].at <= now - self.span:
            self._samples.popleft()

    def send_times(self) -> list[float]:
        """One time per request counted since the oldest kept sample, oldest first."""
        times: list[float] = []
        samples = list(self._samples)
        for before, after in zip(samples, samples[1:], strict=False):
            sent = after.count - before.count
            step = (after.at - before.at) / sent if sent else 0.0
            times += [before.at + step * (i + 1) for i in range(sent)]
        return times

    def rate(self, now: float, seconds: float) -> float:
        """Requests per second over the last ``seconds`` (as far back as the samples go)."""
        samples = [s for s in self._samples if s.at >= now - seconds]
        if len(samples) < 2 or samples[-1].at <= samples[0].at:
            return 0.0
        return (samples[-1].count - samples[0].count) / (samples[-1].at - samples[0].at)

    def peak_rate(self, seconds: float = 5.0) -> float | None:
        """The highest rate over any ``seconds`` in the history; None until it covers that long."""
        samples = list(self._samples)
        if len(samples) < 2 or samples[-1].at - samples[0].at < seconds:
            return None
        best, start = 0.0, 0
        for end in range(1, len(samples)):
            while samples[end].at - samples[start + 1].at >= seconds:
                start += 1
            elapsed = samples[end].at - samples[start].at
            if elapsed >= seconds:
                best = max(best, (samples[end].count - samples[start].count) / elapsed)
        return best


def network_rate(history: SendHistory, rules: PacingRules) -> float | None:
    """The rate the API keeps up with, when clearly below the pacing's (else None: the pacing rules)."""
    peak = history.peak_rate()
    if peak is None or peak <= 0:
        return None
    paced = 1.0 / rules.interval if rules.interval else None
    if paced is not None and peak >= paced * NETWORK_BOUND_SHARE:
        return None
    return peak


def fetch_seconds_left(remaining: int, now: float, history: SendHistory, rules: PacingRules) -> float | None:
    """Seconds until the last of ``remaining`` requests is sent, or None when nothing tells yet.

    With no pacing at all, only the rate the API has kept up with can tell.
    """
    rate = network_rate(history, rules)
    if not rules.interval and rules.minute_limit is None and rate is None:
        return None
    return seconds_to_send(remaining, now, history.send_times(), rules, rate)
