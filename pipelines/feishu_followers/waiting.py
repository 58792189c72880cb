"""Waiting, bounded, for a DuckDB file that another process holds.

DuckDB lets one process write a file, or several read it, never both: an analyst's notebook or
a BI tool that has the file open makes a scheduled load fail with "Could not set lock". A run
waits for it instead (``--lock-timeout``), says once on stderr what it waits for, and stops with
one line if the file stays held; what it fetched is then a pending dlt package that the next
run loads before it fetches again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import duckdb

from feishu_tasks.errors import FatalError

from .errors import causes

T = TypeVar("T")

BUSY_MARKERS = ("Could not set lock", "Conflicting lock")
POLL_SECONDS = 1.0


class DestinationBusy(FatalError):
    """The destination stayed held by another process for the whole ``--lock-timeout``."""


def busy_reason(exc: BaseException) -> str | None:
    """DuckDB's own words on who holds the file, when ``exc`` is (or wraps) a lock conflict."""
    for cause in causes(exc):
        if isinstance(cause, duckdb.Error) and any(marker in str(cause) for marker in BUSY_MARKERS):
            lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
            held = [line for line in lines if "Conflicting lock" in line]
            return (held or lines)[0]
    return None


def wait_while_busy(
    step: Callable[[], T],
    what: str,
    timeout_seconds: float,
    notify: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``step()``, tried again while the DuckDB file is held elsewhere, for up to ``timeout_seconds``."""
    deadline = clock() + timeout_seconds
    told = False
    while True:
        try:
            return step()
        except Exception as exc:
            reason = busy_reason(exc)
            if reason is None:
                raise
            if clock() >= deadline:
                raise DestinationBusy(
                    f"{what}: the DuckDB file is still held by another process after "
                    f"{timeout_seconds:.0f} s ({reason}); close it there, or raise --lock-timeout. "
                    "Nothing fetched is lost: the next run loads it first"
                ) from None
            if not told:
                notify(f"waiting up to {timeout_seconds:.0f} s for the DuckDB file ({what}): {reason}")
                told = True
            sleep(min(POLL_SECONDS, max(0.0, deadline - clock())))
