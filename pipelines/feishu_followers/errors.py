"""Turning a failed run into the one line the user needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.destinations.exceptions import DatabaseException
from dlt.destinations.sql_client import SqlClientBase
from dlt.pipeline.exceptions import PipelineStepFailed
from feishu_tasks.errors import FatalError


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (dlt wraps ours in PipelineStepFailed and more)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "exception", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                stack.append(inner)


def explain_failure(exc: BaseException) -> str | None:
    """One line for a known fatal condition; None for a bug, which should show its traceback."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, FatalError):
            return str(cause)
    for cause in causes:
        if isinstance(cause, ConfigFieldMissingException):
            return f"missing configuration: {', '.join(cause.fields)} (see .dlt/secrets.toml.example)"
        if isinstance(cause, duckdb.Error):
            return f"DuckDB failed: {str(cause).splitlines()[0]}"
    for cause in causes:  # any other SQL destination, through dlt or its driver
        if isinstance(cause, DatabaseException) or (
            isinstance(cause, Exception) and SqlClientBase.is_dbapi_exception(cause)
        ):
            text = str(getattr(cause, "dbapi_exception", cause)).strip()
            return f"the destination failed: {text.splitlines()[0] if text else type(cause).__name__}"
    if isinstance(exc, PipelineStepFailed):
        return f"pipeline step {exc.step} failed: {str(exc.exception).splitlines()[0]}"
    return None


@contextmanager
def fatal_errors_as_one_line() -> Iterator[None]:
    """Re-raise whatever dlt wrapped around a fatal condition as our FatalError."""
    try:
        yield
    except FatalError:
        raise
    except Exception as exc:
        line = explain_failure(exc)
        if line is None:
            raise
        raise FatalError(line) from exc
