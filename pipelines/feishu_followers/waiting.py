"""Waiting, bounded, for a DuckDB file that another process holds.

DuckDB lets one process write a file, or several read it, never both: an analyst's notebook or
a BI tool that has the file open makes a scheduled load fail with "Could not set lock". A run
waits for it instead (``--lock-timeout``), says once on stderr what it waits for, and stops with
one line if the file stays held; what it fetched is then a pending dlt package that the next
run loads before it fetches again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

import duckdb

from feishu_tasks.errors import FatalError

from .errors import causes

T = TypeVar("T")

BUSY_MARKERS = ("Could not set lock", "Conflicting lock")
POLL_SECONDS = 1.0
RUN_ADVICE = "close it there, or raise --lock-timeout. Nothing fetched is lost: the next run loads it first"


class DestinationBusy(FatalError):
    """The destination stayed held by another process for the whole ``--lock-timeout``."""


HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def busy_reason(exc: BaseException) -> str | None:
    """Who holds the DuckDB file, when ``exc`` is (or wraps) DuckDB's lock conflict."""
    for cause in causes(exc):
        text = str(cause)
        if isinstance(cause, duckdb.Error) and any(marker in text for marker in BUSY_MARKERS):
            holder = HOLDER.search(text)
            if holder:
                return f"held by PID {holder['pid']} ({holder['program']})"
            return text.strip().splitlines()[0]
    return None


def wait_while_busy(
    step: Callable[[], T],
    what: str,
    timeout_seconds: float,
    notify: Callable[[str], None],
    stopping: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    advice: str = RUN_ADVICE,
) -> T:
    """``step()``, tried again while the DuckDB file is held elsewhere, for up to ``timeout_seconds``.

    A stop request (``stopping()``) ends the wait at once.
    """
    deadline = clock() + timeout_seconds
    told = False
    while True:
        try:
            return step()
        except Exception as exc:
            reason = busy_reason(exc)
            if reason is None:
                raise
            if clock() >= deadline or stopping():
                why = "a stop was requested" if stopping() else f"still held after {timeout_seconds:.0f} s"
                raise DestinationBusy(
                    f"{what}: the DuckDB file is in use elsewhere ({reason}) and {why}; {advice}"
                ) from None
            if not told:
                notify(f"waiting up to {timeout_seconds:.0f} s for the DuckDB file ({what}): {reason}")
                told = True
            sleep(min(POLL_SECONDS, max(0.0, deadline - clock())))
