"""Turning a failed run into the one line the user needs (printed by ``stderr.say``)."""

from __future__ import annotations

import errno
import importlib.metadata
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigProviderException,
    ConfigValueCannotBeCoercedException,
    InvalidNativeValue,
    LookupTrace,
    LookupTraces,
)
from dlt.common.configuration.specs.base_configuration import extract_inner_hint, is_secret_hint
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.common.exceptions import MissingDependencyException
from dlt.destinations.exceptions import DatabaseException
from dlt.destinations.sql_client import SqlClientBase
from dlt.pipeline.exceptions import PipelineStepFailed
from packaging.requirements import Requirement  # dlt's own dependency

from feishu_tasks.errors import FatalError

DISTRIBUTION = "feishu-task-followers"  # our package, whose extras install dlt's (``[postgres]``)
EXTRA_MARKER = re.compile(r'extra == "([^"]+)"')
DLT_EXTRA = re.compile(r"dlt\[(\w+)\]")


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
TOP_SECTIONS = ("sources", "destination")  # where people configure a source and a destination


def _env_trace(traces: list[LookupTrace]) -> LookupTrace | None:
    """The env var a user would set: the most specific one without a doubled section.

    dlt tries ``SOURCES__FEISHU_TASKS__FEISHU_TASKS__CREDENTIALS__APP_ID`` first (the source's
    section and name are both ``feishu_tasks``), and a destination's keys under the pipeline's
    name first (``FEISHU_FOLLOWERS__DESTINATION__…``); the keys people write are the others.
    """
    candidates = [
        t
        for t in traces
        if t.provider == ENV_PROVIDER and not any(map(str.__eq__, t.sections, t.sections[1:]))
    ]

    def rank(t: LookupTrace) -> tuple[bool, int]:
        return (not t.sections or t.sections[0] in TOP_SECTIONS, len(t.sections))

    return max(candidates, key=rank) if candidates else None


def _plain(traces: Sequence[LookupTrace | LookupTraces]) -> list[LookupTrace]:
    return [t for t in traces if isinstance(t, LookupTrace)]


def _choice(fields: dict[str, list[LookupTrace]]) -> tuple[str, str, str]:
    """One way to configure: (env vars, TOML keys, TOML section), each joined with "and"."""
    found = {name: _env_trace(traces) for name, traces in fields.items()}
    env = " and ".join(t.key if t else name for name, t in found.items())
    toml_keys = " and ".join(found)
    sections = {".".join(t.sections) for t in found.values() if t}
    return env, toml_keys, sections.pop() if len(sections) == 1 else ""


def missing_config_line(exc: ConfigFieldMissingException) -> str:
    """dlt's missing-field report as one line that names the env vars and the TOML keys to set.

    The TOML keys are spelled out: a pip-installed user has no example file to copy.
    """
    choices: list[tuple[str, str, str]] = []
    for field, traces in exc.traces.items():
        nested = [t for t in traces if isinstance(t, LookupTraces)]
        for spec in nested:  # an embedded spec (credentials), or each member of a union of specs
            choices.append(_choice({name: _plain(t) for name, t in spec.traces.items()}))
        if not nested:
            choices.append(_choice({field: _plain(traces)}))
    env = " or ".join(choice[0] for choice in choices)
    toml = " or ".join(choice[1] for choice in choices)
    sections = {choice[2] for choice in choices}
    where = f"under [{sections.pop()}] " if len(sections) == 1 and "" not in sections else ""
    return f"missing configuration: set {env} (env vars), or {toml} {where}in .dlt/secrets.toml"


def _extra_of_ours(kind: str) -> str | None:
    """Our extra that installs ``dlt[kind]`` (``postgres``), read from our package's metadata."""
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:  # run from a source tree without installing
        return None
    for text in requirements:
        requirement = Requirement(text)
        extra = EXTRA_MARKER.search(str(requirement.marker or ""))
        if requirement.name == "dlt" and kind in requirement.extras and extra:
            return f"{DISTRIBUTION}[{extra[1]}]"
    return None


def install_command(dependencies: Sequence[str]) -> str:
    """``pip install "feishu-task-followers[postgres]"`` where our extra brings dlt's, else dlt's own."""
    named = []
    for dependency in dependencies:
        extra = DLT_EXTRA.fullmatch(dependency)
        named.append((_extra_of_ours(extra[1]) if extra else None) or dependency)
    return "pip install " + " ".join(f'"{name}"' for name in named)


def missing_packages_line(what: str, dependencies: Sequence[str], module: str | None = None) -> str:
    """``the postgres destination needs packages that are not installed …: pip install "…"``."""
    missing = f" (no module named {module!r})" if module else ""
    return f"the {what} needs packages that are not installed{missing}: {install_command(dependencies)}"


def _missing_dependency(exc: BaseException) -> str | None:
    """dlt's MissingDependencyException (a destination's driver, e.g. psycopg2) as one line."""
    if not isinstance(exc, MissingDependencyException):
        return None
    cause = exc.__cause__ or exc.__context__  # dlt raises it while handling the ModuleNotFoundError
    module = cause.name if isinstance(cause, ModuleNotFoundError) else None
    return missing_packages_line(exc.caller, exc.dependencies, module)


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


def _unparsable_value(exc: InvalidNativeValue) -> str:
    """A connection string dlt cannot parse (``postgresql://u:p@host:99999x/db``): name the setting.

    dlt's message never shows the value (it may hold a password), and neither does ours.
    """
    spec = exc.spec.__name__
    kind = spec.removesuffix("Credentials").lower()
    where = ".".join(exc.embedded_sections) or "the value"
    in_secrets = f"credentials under [destination.{kind}] in .dlt/secrets.toml"
    setting = (
        f"DESTINATION__{kind.upper()}__CREDENTIALS / {in_secrets}"
        if spec.endswith("Credentials") and kind
        else where
    )
    expected = str(exc.inner_exception).strip().splitlines()
    detail = f": {expected[0]}" if expected and exc.inner_exception is not ValueError else ""
    return f"{setting}: cannot parse the value given (not shown: it may hold a password){detail}"


def _ours(exc: BaseException) -> str | None:
    return str(exc) if isinstance(exc, FatalError) else None


def _configuration(exc: BaseException) -> str | None:
    if isinstance(exc, ConfigFieldMissingException):
        return missing_config_line(exc)
    if isinstance(exc, ConfigValueCannotBeCoercedException):
        return _bad_config_value(exc)
    if isinstance(exc, InvalidNativeValue):
        return _unparsable_value(exc)
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
# cause, whatever failed after it), DuckDB's memory limit, a missing package, configuration, then
# the destination's own words.
_EXPLAINERS = (_ours, _disk_full, _out_of_memory, _missing_dependency, _configuration, _destination)


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
        # A second Ctrl-C / SIGTERM inside a dlt step comes wrapped in PipelineStepFailed: it is
        # the abort it was, not a failure whose message is the signal's number.
        if interrupt := next((c for c in causes(exc) if isinstance(c, KeyboardInterrupt)), None):
            raise interrupt from None
        line = explain_failure(exc)
        if line is None:
            raise
        raise FatalError(line) from exc
