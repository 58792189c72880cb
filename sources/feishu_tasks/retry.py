"""How long to wait before trying a request again.

httpx has no retry policy for answers (only for connecting), and Feishu's answers need one:
5xx, 1470605 and non-JSON gateway pages are transient, 429 tells us how long to wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from .settings import DEFAULT_BACKOFF_BASE_SECONDS, DEFAULT_MAX_ATTEMPTS


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter, plus bounded waits on rate limits."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS
    backoff_max_seconds: float = 30.0
    max_rate_limit_waits: int = 30
    max_rate_limit_wait_seconds: float = 60.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def backoff(self, failed_attempts: int) -> float:
        """Delay after the n-th transient failure (1-based): uniform in [0, base * 2^(n-1)]."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (failed_attempts - 1))
        return self.rng.uniform(0, ceiling)

    def rate_limit_wait(self, reset_seconds: float | None) -> float:
        """The server's ``x-ogw-ratelimit-reset`` (relative seconds), bounded, plus a little jitter."""
        base = 1.0 if reset_seconds is None else max(0.0, reset_seconds)
        base = min(base, self.max_rate_limit_wait_seconds)
        return base + self.rng.uniform(0, min(1.0, 0.1 + base * 0.1))


class GivesUp(Protocol):
    """A verdict that knows the error to raise once its tries are spent (see responses.py)."""

    def give_up(self, attempts: int) -> Exception: ...


class WaitsOut(GivesUp, Protocol):
    """A rate-limit verdict: the server says how long to wait."""

    @property
    def reset_seconds(self) -> float | None: ...


class Attempts:
    """The tries of one request: transient failures and rate-limit waits, each bounded by the policy.

    ``after_failure`` / ``after_rate_limit`` return how long to wait before the next try, or
    raise the verdict's own error (``give_up``) once that kind of tries is spent.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.rate_limit_waits = 0

    @property
    def total(self) -> int:
        return self.failures + self.rate_limit_waits

    def after_failure(self, verdict: GivesUp) -> float:
        self.failures += 1
        if self.failures >= self.policy.max_attempts:
            raise verdict.give_up(self.total)
        return self.policy.backoff(self.failures)

    def after_rate_limit(self, verdict: WaitsOut) -> float:
        self.rate_limit_waits += 1
        if self.rate_limit_waits > self.policy.max_rate_limit_waits:
            raise verdict.give_up(self.total)
        return self.policy.rate_limit_wait(verdict.reset_seconds)
