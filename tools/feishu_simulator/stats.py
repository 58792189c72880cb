"""Thread-safe request counters, read by tests and the throughput benchmark."""

from __future__ import annotations

import threading
from typing import Any

BUSINESS_ENDPOINTS = frozenset(
    {"followers", "list_tasks", "get_task", "v2_tasklists", "v2_tasklist_tasks", "v2_get_task"}
)


class Stats:
    """What the server answered: business requests by endpoint, status and second.

    "Business" means the task endpoints, v1 and v2 (token, unknown-path and control
    requests are counted apart).  ``per_second`` maps an integer Unix second to
    the business requests that arrived in it, for measuring a sustained rate.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.business_requests = 0
            self.by_endpoint: dict[str, int] = {}
            self.by_status: dict[int, int] = {}
            self.rate_limited = 0
            self.token_requests = 0
            self.per_second: dict[int, int] = {}
            self.first_request_at: float | None = None
            self.last_request_at: float | None = None

    def record(self, endpoint: str, status: int, arrived: float, rate_limited: bool = False) -> None:
        """Count one answered request (``arrived`` is its Unix arrival time)."""
        with self._lock:
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
            if endpoint == "token":
                self.token_requests += 1
                return
            if endpoint not in BUSINESS_ENDPOINTS:
                return
            self.business_requests += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if rate_limited:
                self.rate_limited += 1
            second = int(arrived)
            self.per_second[second] = self.per_second.get(second, 0) + 1
            if self.first_request_at is None:
                self.first_request_at = arrived
            self.last_request_at = arrived

    def rate(self) -> float:
        """Mean business requests per second between the first and last arrival."""
        with self._lock:
            if self.first_request_at is None or self.last_request_at is None:
                return 0.0
            span = self.last_request_at - self.first_request_at
            return self.business_requests / span if span > 0 else float(self.business_requests)

    def as_dict(self) -> dict[str, Any]:
        """A consistent snapshot (``per_second`` keys stay ints; JSON turns them to strings)."""
        with self._lock:
            return {
                "business_requests": self.business_requests,
                "by_endpoint": dict(self.by_endpoint),
                "by_status": dict(self.by_status),
                "rate_limited": self.rate_limited,
                "token_requests": self.token_requests,
                "per_second": dict(self.per_second),
                "first_request_at": self.first_request_at,
                "last_request_at": self.last_request_at,
            }
