"""A load that cannot succeed is set aside, so that it never blocks the runs after it.

dlt keeps a package whose job failed pending and retries it on every later run; when no retry
can succeed, every later run fails the same way, for ever (issue 21, item 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dlt
from dlt.load.exceptions import (
    LoadClientJobException,
    LoadClientJobFailed,
    LoadClientJobRetry,
    LoadClientJobTerminalRetry,
)

from feishu_tasks.errors import FatalError

from .errors import causes


@contextmanager
def set_aside_when_terminal(pipeline: dlt.Pipeline, fetched_by: str) -> Iterator[None]:
    """A load job that cannot succeed never blocks later runs: its package is aborted.

    A job that failed terminally, or that failed the same way in ``GIVE_UP_AFTER_RUNS`` runs
    (dlt retries some errors that no retry changes, such as Postgres's syntax error on a damaged
    file), is set aside: the package is completed as aborted (``Pipeline.abort_packages``),
    nothing of it reaches the history (it never completes), the pipeline's state goes back to
    before it (a discover cursor does not move past tasks that were not loaded), and the run
    stops with one line saying what failed. The next run starts clean and fetches those tasks
    again. A failure that may pass (a full disk, a busy file, memory) stays pending for the next
    run to complete, as before.
    """
    try:
        yield
    except Exception as exc:
        failed = next((cause for cause in causes(exc) if _cannot_succeed(cause)), None)
        if not isinstance(failed, LoadClientJobException):
            raise
        pipeline.abort_packages()
        message = str(failed.failed_message or "").strip().splitlines()
        raise FatalError(
            f"the load of what {fetched_by} fetched failed in a way no retry changes "
            f"({failed.job_id}: {message[0] if message else type(failed).__name__}); it was set aside "
            f"(load {failed.load_id}, aborted) so that later runs are not blocked: the next run fetches "
            "those tasks again"
        ) from exc


GIVE_UP_AFTER_RUNS = 3  # runs in which a job failed the same transient way before it is set aside


def _cannot_succeed(exc: BaseException) -> bool:
    if isinstance(exc, LoadClientJobTerminalRetry | LoadClientJobFailed):
        return True
    return isinstance(exc, LoadClientJobRetry) and exc.retry_count >= GIVE_UP_AFTER_RUNS * exc.max_retry_count
