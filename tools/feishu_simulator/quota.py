"""Sliding-window request quotas (per second and per minute) for one app, per endpoint.

Sliding logs rather than fixed windows: a burst cannot pass twice the limit by
straddling a window edge, and tests get exact, clock-independent counts.
Only admitted requests are logged, so rejected requests do not consume quota.
Used from the server's event loop only, hence no lock.
"""

from __future__ import annotations

import math
from collections import deque


class SlidingWindow:
    """Timestamps of admitted requests within the last ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._hits: deque[float] = deque()

    def wait(self, limit: int | None, now: float) -> float | None:
        """Seconds until one more request fits, or None if it fits now (or no limit)."""
        hits = self._hits
        if limit is None:
            hits.clear()
            return None
        cutoff = now - self.seconds
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if len(hits) < limit:
            return None
        if limit <= 0:
            return self.seconds
        return hits[len(hits) - limit] + self.seconds - now

    def record(self, now: float, limit: int | None) -> None:
        """Log an admitted request (only while a limit is set)."""
        if limit is not None:
            self._hits.append(now)

    def clear(self) -> None:
        """Forget every logged request."""
        self._hits.clear()


#: Each endpoint's documented (per_second, per_minute) limits; None = no such limit stated.
#: Task v2 figures from the endpoint pages (open.feishu.cn/document/task-v2/...): get task
#: states only "10 次/秒"; the two list pages "1000 次/分钟、50 次/秒".  The v1 followers and
#: get task pages state none: the v1 siblings' figure is assumed.
DOCUMENTED_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "followers": (50, 1000),
    "list_tasks": (50, 1000),
    "get_task": (50, 1000),
    "v2_tasklists": (50, 1000),
    "v2_tasklist_tasks": (50, 1000),
    "v2_get_task": (10, None),
}


class Quota:
    """Per-second and per-minute limits; either one rejects."""

    def __init__(self) -> None:
        self.second = SlidingWindow(1.0)
        self.minute = SlidingWindow(60.0)

    def admit(self, per_second: int | None, per_minute: int | None, now: float) -> tuple[int, int] | None:
        """None if admitted (and counted), else (window limit, whole seconds to wait >= 1).

        When both windows are full the minute window is reported: its wait is the longer.
        """
        wait_minute = self.minute.wait(per_minute, now)
        if wait_minute is not None and per_minute is not None:
            return per_minute, max(1, math.ceil(wait_minute))
        wait_second = self.second.wait(per_second, now)
        if wait_second is not None and per_second is not None:
            return per_second, 1
        self.minute.record(now, per_minute)
        self.second.record(now, per_second)
        return None

    def clear(self) -> None:
        """Start both windows afresh."""
        self.second.clear()
        self.minute.clear()


class EndpointQuotas:
    """One ``Quota`` per endpoint: Feishu counts each endpoint apart, per app and tenant."""

    def __init__(self) -> None:
        self._by_endpoint: dict[str, Quota] = {}

    def admit(
        self, endpoint: str, per_second: int | None, per_minute: int | None, now: float
    ) -> tuple[int, int] | None:
        """``Quota.admit`` on the endpoint's own windows."""
        quota = self._by_endpoint.get(endpoint)
        if quota is None:
            quota = self._by_endpoint[endpoint] = Quota()
        return quota.admit(per_second, per_minute, now)

    def clear(self) -> None:
        """Start every endpoint's windows afresh."""
        for quota in self._by_endpoint.values():
            quota.clear()
