"""Live counters of one fetch, for the run summary, the progress display and the benchmark.

The fetch thread writes them; the runner reads them while the fetch goes on. Every field is a
plain number (or a small dict of numbers) that only ever grows, or a value replaced whole, so a
reader in another thread sees the latest value or the one just before, never a broken one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .ratelimit import PacingRules


@dataclass
class FetchStats:
    """What the fetch has done so far."""

    started_at: float = field(default_factory=time.monotonic)  # reset when the fetch begins
    finished_at: float | None = None  # when the fetch ended (None: not yet)
    # The limits the requests are paced at, set when the fetch opens its client: a display
    # predicts the time left from them (None: the fetch has not begun).
    pacing: PacingRules | None = None
    # The work: tasks of the run (grows while a listing runs; malformed ids included) and their cost.
    tasks_queued: int = 0
    expected_requests: int = 0  # follower requests the queued tasks should take (last run's counts)
    expected_requests_done: int = 0  # ... of which belong to tasks that are finished
    task_requests_done: int = 0  # ... what those finished tasks took (retries aside): how far off it was
    listing_pages: int = 0  # pages of task listings read (discover, task lists)
    listing_done: bool = False  # no listing left to run (or none was asked for)
    listing_problems: list[str] = field(default_factory=list)  # a listing that stopped early, and why
    # Outcomes.
    tasks_by_status: dict[str, int] = field(default_factory=dict)
    tasklists_by_status: dict[str, int] = field(default_factory=dict)  # task lists read (or not)
    followers: int = 0
    skipped_by_budget: int = 0  # left for a later run: --max-requests reached
    skipped_by_rate_limit: int = 0  # left for a later run: an endpoint answered only rate limits too long
    rate_limit_stop: str | None = None  # why (the runner's one line), once that happened
    interrupted: int = 0  # left for a later run: the run was asked to stop
    # Requests.
    sent: int = 0  # counted before sending, for the --max-requests cap
    requests: int = 0  # answered (any status)
    retries: int = 0
    rate_limited: int = 0
    token_refreshes: int = 0

    @property
    def tasks_done(self) -> int:
        return sum(self.tasks_by_status.values())

    def count_outcome(self, status: str, followers: int) -> None:
        self.tasks_by_status[status] = self.tasks_by_status.get(status, 0) + 1
        self.followers += followers

    def count_answer(self) -> None:
        self.requests += 1
