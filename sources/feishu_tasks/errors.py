"""The two kinds of trouble: fatal for the whole run, or data about one task.

Messages never carry tokens or secrets: they are printed, logged and stored in dlt's trace.
"""

from __future__ import annotations

from dataclasses import dataclass


class FatalError(Exception):
    """Stops the run; ``str()`` is the one line that tells the user what to fix."""


@dataclass
class ApiError(Exception):
    """A business answer with a non-zero code that retrying will not cure."""

    http_status: int
    code: int | None
    msg: str
    log_id: str | None = None

    def __str__(self) -> str:
        return f"HTTP {self.http_status}, code {self.code}: {self.msg}"


@dataclass
class RetriesExhausted(Exception):
    """A request kept failing transiently (5xx, 429, timeouts) until its attempts ran out."""

    attempts: int
    last_error: str
    code: int | None = None
    log_id: str | None = None

    def __str__(self) -> str:
        return f"gave up after {self.attempts} attempts: {self.last_error}"


@dataclass
class PaginationError(Exception):
    """The server handed back a page token it had already given: following it would loop."""

    msg: str
    log_id: str | None = None

    def __str__(self) -> str:
        return self.msg


class BudgetExhausted(Exception):
    """The run's ``max_requests`` cap is reached: what is left waits for a later run."""
