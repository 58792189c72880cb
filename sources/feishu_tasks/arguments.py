"""The source's numeric arguments checked before anything runs: one line naming what is wrong.

dlt checks an argument's type (an env var ``abc`` for a float), not its range: a negative
rate, no concurrency, an infinite timeout or a lifetime past datetime's range would otherwise
run silently wrong, never end, or fail deep inside with a traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

CENTURY = 100 * 365 * 86_400  # seconds; datetime arithmetic overflows not far beyond


@dataclass(frozen=True)
class Range:
    """The values an argument takes, and how to say so."""

    low: float
    high: float
    whole: bool
    low_inclusive: bool = True

    def admits(self, value: Any) -> bool:
        if type(value) is bool or not isinstance(value, int | float) or not math.isfinite(value):
            return False
        above_low = value >= self.low if self.low_inclusive else value > self.low
        return above_low and value <= self.high and (not self.whole or float(value).is_integer())

    def __str__(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        low = f"at least {self.low:g}" if self.low_inclusive else f"greater than {self.low:g}"
        return f"{kind}, {low} and at most {self.high:g}"


SECONDS = Range(0, CENTURY, whole=False)
SOME_SECONDS = Range(0, CENTURY, whole=False, low_inclusive=False)
RATE = Range(0, 1_000_000, whole=False)  # 0 = no ceiling
RULES: dict[str, Range] = {
    "concurrency": Range(1, 1000, whole=True),  # every 4 in flight are a connection pool of their own
    "max_rps": RATE,
    "max_rpm": RATE,
    "timeout_seconds": SOME_SECONDS,
    "max_pages_per_task": Range(1, 10**9, whole=True),
    "max_seconds_per_task": SOME_SECONDS,
    "max_listing_pages": Range(1, 10**9, whole=True),
    "max_listing_seconds": SOME_SECONDS,
    "max_attempts": Range(1, 1000, whole=True),
    "backoff_base_seconds": Range(0, 3600, whole=False),
    "discover_lookback_seconds": SECONDS,
    "stale_after_seconds": SECONDS,
    "max_requests": Range(0, 10**12, whole=True),
    "max_rate_limited_seconds": SOME_SECONDS,
}


def check_arguments(**arguments: Any) -> None:
    """Raises ConfigError for the first argument out of its range (None means "not set")."""
    for name, value in arguments.items():
        if value is not None and not RULES[name].admits(value):
            env = f"SOURCES__FEISHU_TASKS__{name.upper()}"
            raise ConfigError(f"{name} ({env}): cannot use {value!r}; expected {RULES[name]}")


def check_journal(journal: str | None, name: str = "journal") -> None:
    """The change journal is a file (created when missing): a folder would fail at the first read, as
    if the destination had. ``name``: the parameter that gave it (``journal``, ``ticket_journal``)."""
    if journal is not None and Path(journal).is_dir():
        raise ConfigError(
            f"{name} (SOURCES__FEISHU_TASKS__{name.upper()}): cannot use {journal!r}; it is a folder, "
            "expected the change journal's file"
        )
