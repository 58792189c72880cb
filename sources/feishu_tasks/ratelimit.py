"""Client-side pacing that keeps under Feishu's per-second AND per-minute quotas.

httpx limits connections, not request rates, so the pacing is ours. Two rules, both on the
times we send (the server counts arrival times, which jitter a little around them):

- per second: an even spacing of ``1 / max_rps`` between sends, never a burst. A burst of the
  whole per-second allowance at once, as a sliding window over send times allows, meets the
  server's sliding window edge-on: one request that arrives a millisecond early is a 429.
- per minute: a sliding window over send times (at most ``max_rpm`` in any 60 s), which lets
  a short run go at the per-second pace and a long one settle at ``max_rpm / 60``.

``headroom`` keeps a small margin below both quotas for that jitter. Waiters queue on one
lock, so they are served in order and only the head of the queue sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .endpoints import Endpoint
from .settings import DEFAULT_MAX_RPM, DEFAULT_MAX_RPS

MIN_ADAPTED_SHARE = 0.1  # an announced limit lowers ours to no less than this share of it
FLOOR_UNCONFIGURED = {False: DEFAULT_MAX_RPS, True: DEFAULT_MAX_RPM}  # where pacing is off


@dataclass(frozen=True)
class PacingRules:
    """The limits a limiter enforces: what a progress display needs to predict its sends."""

    max_rps: float | None  # as configured (None = off)
    max_rpm: float | None
    interval: float  # seconds between two sends, after headroom (0 = no per-second limit)
    minute_limit: int | None  # sends allowed in any ``window_seconds``, after headroom (None = off)
    window_seconds: float  # the minute window's span: 60 s plus the slack


class _Window:
    """Send times within the last ``span`` seconds, allowing at most ``limit`` of them."""

    def __init__(self, limit: float, span: float) -> None:
        self.span = span
        self.limit = max(1, int(limit))
        self.sent: deque[float] = deque()

    def wait_needed(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - self.span:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            return 0.0
        return self.sent[len(self.sent) - self.limit] + self.span - now


class PacingLimiter:
    """Async limiter shared by every request of a run; ``None`` or 0 disables a limit.

    The server counts arrival times, and network and scheduling jitter move them a little away
    from our send times: ``headroom`` (a share of each limit) and ``slack_seconds`` (added to
    the minute window's span) keep us clear of that.
    """

    def __init__(
        self,
        max_rps: float | None,
        max_rpm: float | None,
        headroom: float = 0.98,
        slack_seconds: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._configured = (max_rps or None, max_rpm or None)
        self._clock = clock
        self._sleep = sleep
        self._headroom = headroom
        self._slack = slack_seconds
        self.interval = 1.0 / (max_rps * headroom) if max_rps else 0.0
        self._minute = self._minute_window(max_rpm * headroom) if max_rpm else None
        self._next_send = float("-inf")
        self._paused_until = float("-inf")
        self._lock = asyncio.Lock()

    def _minute_window(self, limit: float) -> _Window:
        return _Window(limit, 60.0 + self._slack)

    @property
    def minute_limit(self) -> int | None:
        """Requests allowed in any 60 s (after headroom), or None without a per-minute limit."""
        return self._minute.limit if self._minute else None

    @property
    def rules(self) -> PacingRules:
        """The limits in force now (``adapt`` may have lowered them since)."""
        return PacingRules(
            *self._configured,
            interval=self.interval,
            minute_limit=self.minute_limit,
            window_seconds=self._minute.span if self._minute else 60.0 + self._slack,
        )

    async def acquire(self) -> None:
        """Wait until one more request fits both limits, then count it as sent."""
        if not self.interval and self._minute is None and self._paused_until == float("-inf"):
            return  # pacing off and never paused: no lock, no clock
        async with self._lock:
            while True:
                now = self._clock()
                wait = max(self._paused_until - now, self._next_send - now)
                if self._minute is not None:
                    wait = max(wait, self._minute.wait_needed(now))
                if wait <= 0:
                    break
                await self._sleep(wait)
            self._next_send = now + self.interval
            if self._minute is not None:
                self._minute.sent.append(now)

    def pause(self, seconds: float) -> None:
        """Hold every request back: the server said the quota is spent for ``seconds``."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def adapt(self, server_limit: int | None, reset_seconds: float | None) -> None:
        """Lower a limit when the server announces a smaller one than configured.

        A reset of more than a second can only come from the minute window.
        """
        if not server_limit or server_limit <= 0:
            return
        per_minute = reset_seconds is not None and reset_seconds > 1.5
        allowed = max(server_limit * self._headroom, self._floor(per_minute))
        if per_minute:
            if self._minute is None or self._minute.limit > allowed:
                old = self._minute.sent if self._minute else deque()
                self._minute = self._minute_window(allowed)
                self._minute.sent = old  # what was sent still counts
        elif not self.interval or self.interval < 1.0 / allowed:
            self.interval = 1.0 / allowed

    def _floor(self, per_minute: bool) -> float:
        """The least an announced limit lowers us to: a tenth of what is configured.

        A server (or a proxy) announcing a limit of 1 would otherwise pace a 10,000-task run
        over a week: far below the documented quota, the run goes on at the floor and the 429s
        that follow are waited out (bounded) as any 429 is.
        """
        configured = self._configured[1 if per_minute else 0]
        floor = (configured or FLOOR_UNCONFIGURED[per_minute]) * self._headroom * MIN_ADAPTED_SHARE
        return max(1.0, floor)


class Pacing:
    """One limiter per endpoint: Feishu counts each endpoint's quota on its own.

    An endpoint is paced at the lower of its documented quota (``endpoints.py``) and the run's
    ``max_rps`` / ``max_rpm`` (0 or None: no limit of that kind on any endpoint), unless
    ``overrides`` names it: ``{"get_task_v2": (10, 600)}``, None for no limit of that kind.
    """

    def __init__(
        self,
        max_rps: float | None,
        max_rpm: float | None,
        overrides: Mapping[str, tuple[float | None, float | None]] | None = None,
    ) -> None:
        self.max_rps, self.max_rpm = max_rps or None, max_rpm or None
        self.overrides = dict(overrides or {})
        self._limiters: dict[str, PacingLimiter] = {}

    def limits(self, endpoint: Endpoint) -> tuple[float | None, float | None]:
        """(per second, per minute) for ``endpoint``; None where there is no limit."""
        if endpoint.name in self.overrides:
            return self.overrides[endpoint.name]
        per_second = min(endpoint.per_second, self.max_rps) if self.max_rps else None
        per_minute = min(endpoint.per_minute, self.max_rpm) if self.max_rpm else None
        return per_second, per_minute

    def limiter(self, endpoint: Endpoint) -> PacingLimiter:
        """The endpoint's limiter, made on first use (every request of the run shares it)."""
        if endpoint.name not in self._limiters:
            self._limiters[endpoint.name] = PacingLimiter(*self.limits(endpoint))
        return self._limiters[endpoint.name]
