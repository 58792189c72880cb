"""Turning a failed run into the one line the user needs."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigProviderException,
    ConfigValueCannotBeCoercedException,
    LookupTrace,
    LookupTraces,
)
from dlt.common.configuration.specs.base_configuration import extract_inner_hint, is_secret_hint
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.destinations.exceptions import DatabaseException
from dlt.destinations.sql_client import SqlClientBase
from dlt.pipeline.exceptions import PipelineStepFailed

from feishu_tasks.errors import FatalError


def causes(exc: BaseException) -> Iterator[BaseException]:
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


ENV_PROVIDER = "Environment Variables"


def _env_key(traces: list[LookupTrace]) -> str | None:
    """The env var a user would set: the most specific one without a doubled section.

    dlt tries ``SOURCES__FEISHU_TASKS__FEISHU_TASKS__CREDENTIALS__APP_ID`` first (the source's
    section and name are both ``feishu_tasks``); the key people write is the one without it.
    """
    keys = [
        (len(t.sections), t.key)
        for t in traces
        if t.provider == ENV_PROVIDER and not any(map(str.__eq__, t.sections, t.sections[1:]))
    ]
    return max(keys)[1] if keys else None


def _plain(traces: Sequence[LookupTrace | LookupTraces]) -> list[LookupTrace]:
    return [t for t in traces if isinstance(t, LookupTrace)]


def missing_config_line(exc: ConfigFieldMissingException) -> str:
    """dlt's missing-field report as one line that names the env vars to set."""
    choices: list[str] = []
    for field, traces in exc.traces.items():
        nested = [t for t in traces if isinstance(t, LookupTraces)]
        for spec in nested:  # an embedded spec (credentials), or each member of a union of specs
            keys = [_env_key(_plain(t)) or name for name, t in spec.traces.items()]
            choices.append(" and ".join(keys))
        if not nested:
            choices.append(_env_key(_plain(traces)) or field)
    return (
        f"missing configuration: set {' or '.join(choices)} "
        "(env vars, or the same keys in .dlt/secrets.toml; see .dlt/secrets.toml.example)"
    )


DISK_FULL_MARKERS = ("No space left on device", "Disk quota exceeded")
# "_duckdb.TransactionException: TransactionContext Error: ..." → the part a person reads.
EXCEPTION_NAMES = re.compile(r"^(?:[\w.]+(?:Exception|Error): )+")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _disk_full(exc: BaseException) -> str | None:
    """Where the chain holds a full disk, that is the cause to show, whatever failed after it."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    text = str(exc)
    for marker in DISK_FULL_MARKERS:
        if marker in text:
            line = next(line for line in text.splitlines() if marker in line)
            return f"the disk is full: {EXCEPTION_NAMES.sub('', line.strip())}"
    return None


OUT_OF_MEMORY = "Out of Memory Error"


def _out_of_memory(exc: BaseException) -> str | None:
    """DuckDB refused memory past its limit: name the options that give it more."""
    text = str(exc)
    if OUT_OF_MEMORY not in text:
        return None
    line = next(line for line in text.splitlines() if OUT_OF_MEMORY in line)
    return (
        f"DuckDB ran out of its memory limit ({EXCEPTION_NAMES.sub('', line.strip())}): raise "
        "--memory-budget (DuckDB gets a quarter of it) or --duckdb-memory-limit; what was fetched is "
        "kept, and the next run loads it first"
    )


def _bad_config_value(exc: ConfigValueCannotBeCoercedException) -> str:
    shown = "" if is_secret_hint(exc.hint) else f" {exc.field_value!r}"
    expected = getattr(extract_inner_hint(exc.hint), "__name__", str(exc.hint))
    return f"configuration value {exc.field_name}:{shown} is not a valid {expected}"


def _ours(exc: BaseException) -> str | None:
    return str(exc) if isinstance(exc, FatalError) else None


def _configuration(exc: BaseException) -> str | None:
    if isinstance(exc, ConfigFieldMissingException):
        return missing_config_line(exc)
    if isinstance(exc, ConfigValueCannotBeCoercedException):
        return _bad_config_value(exc)
    if isinstance(exc, ConfigProviderException):
        return f"cannot read dlt's configuration: {_first_line(exc)}"
    return None


def _destination(exc: BaseException) -> str | None:
    """DuckDB's own errors, then any other SQL destination's, through dlt or its driver."""
    if isinstance(exc, duckdb.Error):
        return f"DuckDB failed: {_first_line(exc)}"
    if isinstance(exc, DatabaseException | DestinationTerminalException) or (
        isinstance(exc, Exception) and SqlClientBase.is_dbapi_exception(exc)
    ):
        return f"the destination failed: {_first_line(getattr(exc, 'dbapi_exception', exc))}"
    return None


# In this order over the whole chain of causes: our own line first, then a full disk (the real
# cause, whatever failed after it), DuckDB's memory limit, configuration, the destination's words.
_EXPLAINERS = (_ours, _disk_full, _out_of_memory, _configuration, _destination)


def explain_failure(exc: BaseException) -> str | None:
    """One line for a known fatal condition; None for a bug, which the CLI still shows as one line."""
    chain = list(causes(exc))
    for explain in _EXPLAINERS:
        for cause in chain:
            if line := explain(cause):
                return line
    if isinstance(exc, PipelineStepFailed):
        return f"pipeline step {exc.step} failed: {_first_line(exc.exception)}"
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
