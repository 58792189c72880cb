"""Counters of one fetch, for the run summary, the progress display and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FetchStats:
    """Counters for the run summary and the benchmark."""

    tasks_by_status: dict[str, int] = field(default_factory=dict)
    followers: int = 0
    skipped_by_budget: int = 0
    finished: bool = False  # every task of the run went into a load
    planned: list[tuple[str, str]] = field(default_factory=list)  # dry run: (task_id, reason)
    sent: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    token_refreshes: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def count_outcome(self, status: str, followers: int) -> None:
        self.tasks_by_status[status] = self.tasks_by_status.get(status, 0) + 1
        self.followers += followers

    def count_answer(self, status: int) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
