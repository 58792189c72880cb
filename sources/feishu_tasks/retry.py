"""How long to wait before trying a request again.

httpx has no retry policy for answers (only for connecting), and Feishu's answers need one:
5xx, 1470605 and non-JSON gateway pages are transient, 429 tells us how long to wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter, plus bounded waits on rate limits."""

    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
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
