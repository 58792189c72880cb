"""Client-side pacing that keeps under Feishu's per-second AND per-minute quotas.

httpx limits connections, not request rates, so the pacing is ours. Sliding windows over the
send times of recent requests: if no sliding window exceeds a limit, no fixed window on the
server does either, so a long run at the real limits meets almost no 429 answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


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
    """Async limiter shared by every request of a run; ``None`` or 0 disables a window.

    The server counts arrival times, and network and scheduling jitter move them a little
    away from our send times; ``headroom`` (a share of the limit) and ``slack_seconds`` (added
    to each window's span) keep us clear of that.
    """

    def __init__(
        self,
        max_rps: float | None,
        max_rpm: float | None,
        headroom: float = 0.98,
        slack_seconds: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._headroom = headroom
        self._slack = slack_seconds
        self._second = self._window(max_rps, 1.0) if max_rps else None
        self._minute = self._window(max_rpm, 60.0) if max_rpm else None
        self._paused_until = 0.0

    def _window(self, limit: float, span: float) -> _Window:
        return _Window(limit * self._headroom, span + self._slack)

    @property
    def windows(self) -> list[_Window]:
        return [w for w in (self._second, self._minute) if w is not None]

    async def acquire(self) -> None:
        """Wait until one more request fits every window, then count it as sent."""
        while True:
            now = self._clock()
            wait = self._paused_until - now
            for window in self.windows:
                wait = max(wait, window.wait_needed(now))
            if wait <= 0:
                for window in self.windows:
                    window.sent.append(now)
                return
            await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every request back: the server said the quota is spent for ``seconds``."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def adapt(self, server_limit: int | None, reset_seconds: float | None) -> None:
        """Lower a window's limit when the server announces a smaller one than configured.

        A reset of more than a second can only come from the minute window.
        """
        if not server_limit or server_limit <= 0:
            return
        if reset_seconds is not None and reset_seconds > 1.5:
            if self._minute is None or self._minute.limit > server_limit * self._headroom:
                self._minute = self._window(server_limit, 60.0)
        elif self._second is None or self._second.limit > server_limit * self._headroom:
            self._second = self._window(server_limit, 1.0)
