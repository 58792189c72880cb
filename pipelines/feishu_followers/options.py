"""Run-level options: a command-line flag wins, else dlt config, else the default.

dlt's providers (``.dlt/config.toml``, ``.dlt/secrets.toml``, env vars) are the one place
configuration comes from; ``[sources.feishu_tasks]`` holds both source and run options so a
scheduled job can be configured without flags.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dlt

from feishu_tasks.errors import ConfigError, FatalError

from .durations import parse_duration

SECTION = "sources.feishu_tasks"

# Source arguments that a flag may set; the rest dlt resolves inside the source.
SOURCE_FLAGS = (
    "base_url",
    "user_id_type",
    "concurrency",
    "max_rps",
    "max_rpm",
    "followers_api",
)


def from_config(name: str, default: Any) -> Any:
    """``sources.feishu_tasks.<name>`` from dlt's providers, or ``default``."""
    value: Any = dlt.config.get(f"{SECTION}.{name}")
    return default if value is None else value


def _list_from_config(name: str) -> list[str]:
    """A list of strings from dlt config (a TOML array, or an env var holding a JSON array)."""
    value = from_config(name, None)
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{SECTION}.{name}: expected a list of strings, not {value!r}")
    return list(value)


def parse_bool(value: Any) -> bool:
    """A flag from TOML (a bool) or an env var (a string such as ``true`` / ``0``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(value)


def parse_count(value: Any) -> int:
    """A whole number, at least 0."""
    number = int(str(value).strip())
    if number < 0:
        raise ValueError(value)
    return number


def _seconds(value: Any) -> float:
    return parse_duration(str(value)).total_seconds()


# Run options read from flags or dlt config: name → (parser, what it accepts).
PARSERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "discover": (parse_bool, "true or false"),
    "changed": (parse_bool, "true or false"),
    "all_tasklists": (parse_bool, "true or false"),
    "tasklist_completed": (parse_bool, "true or false"),
    "quiet": (parse_bool, "true or false"),
    "max_requests": (parse_count, "a whole number of requests"),
    "rows_per_load": (parse_count, "a whole number of rows (0 = one load)"),
    "stale_after": (parse_duration, "a duration such as 90s, 15m, 6h or 7d"),
    "lock_timeout": (_seconds, "a duration such as 90s, 5m or 1h"),
    "discover_lookback": (_seconds, "a duration such as 6h or 1d"),
    "progress_interval": (_seconds, "a duration such as 30s or 5m (0 = no progress lines)"),
}


def parsed(name: str, value: Any) -> Any:
    """``value`` of run option ``name`` in its type; a ConfigError naming the key otherwise."""
    parse, accepts = PARSERS[name]
    try:
        return parse(value)
    except (ValueError, TypeError, FatalError):
        env = f"{SECTION}.{name}".upper().replace(".", "__")
        raise ConfigError(
            f"--{name.replace('_', '-')} / {SECTION}.{name} ({env}): cannot use {value!r}; expected {accepts}"
        ) from None


@dataclass
class RunOptions:
    """What one ``feishu-followers run`` does."""

    task_ids: list[str] = field(default_factory=list)
    task_ids_file: str | None = None
    task_ids_query: str | None = None
    discover: bool = False
    tasklists: list[str] = field(default_factory=list)
    all_tasklists: bool = False
    tasklist_completed: bool | None = None
    destination: str = "duckdb"  # a dlt destination name; its credentials come from dlt config
    duckdb_path: str = "./feishu_followers.duckdb"
    dataset: str = "feishu_tasks"
    pipeline_name: str = "feishu_tasks"
    pipelines_dir: str | None = None
    duckdb_memory_limit: str | None = "256MB"
    quiet: bool = False
    verbose: bool = False  # dlt's own progress log, and a bug's traceback
    progress_interval: float = 30.0  # seconds between progress lines when not on a terminal (0 = none)
    full_refresh: bool = False
    stale_after: timedelta | None = None
    changed: bool = False  # read the tasks the change journal marks
    journal: str | None = None  # the change journal's path (None: beside the pipeline's working folder)
    max_requests: int | None = None
    dry_run: bool = False
    rows_per_load: int | None = 500_000
    lock_timeout_seconds: float = 300.0
    source_args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(cls, flags: dict[str, Any]) -> RunOptions:
        """Merge explicit flags (None = not given) over dlt config and defaults."""

        def pick(name: str, default: Any) -> Any:
            return flags[name] if flags.get(name) is not None else from_config(name, default)

        def typed(name: str, default: Any) -> Any:
            value = pick(name, None)
            return default if value is None else parsed(name, value)

        source_args = {name: flags[name] for name in SOURCE_FLAGS if flags.get(name) is not None}
        if flags.get("discover_lookback") is not None:
            lookback = parsed("discover_lookback", flags["discover_lookback"])
            source_args["discover_lookback_seconds"] = int(lookback)
        return cls(
            task_ids=list(flags.get("task_ids") or []),
            task_ids_file=flags.get("task_ids_file"),
            task_ids_query=flags.get("task_ids_query"),
            discover=bool(flags.get("discover")) or typed("discover", False),
            tasklists=list(flags.get("tasklists") or []) or _list_from_config("tasklists"),
            all_tasklists=bool(flags.get("all_tasklists")) or typed("all_tasklists", False),
            tasklist_completed=typed("tasklist_completed", None),
            destination=str(pick("destination", cls.destination)),
            duckdb_path=str(pick("duckdb", cls.duckdb_path)),
            dataset=str(pick("dataset", cls.dataset)),
            pipeline_name=str(pick("pipeline_name", cls.pipeline_name)),
            pipelines_dir=pick("pipelines_dir", None),
            duckdb_memory_limit=pick("duckdb_memory_limit", cls.duckdb_memory_limit) or None,
            quiet=bool(flags.get("quiet")) or typed("quiet", False),
            verbose=bool(flags.get("verbose")),
            progress_interval=typed("progress_interval", cls.progress_interval),
            full_refresh=bool(flags.get("full_refresh")),
            stale_after=typed("stale_after", None),
            changed=bool(flags.get("changed")) or typed("changed", False),
            journal=pick("journal", None),
            max_requests=typed("max_requests", None),
            dry_run=bool(flags.get("dry_run")),
            rows_per_load=typed("rows_per_load", cls.rows_per_load) or None,
            lock_timeout_seconds=typed("lock_timeout", cls.lock_timeout_seconds),
            source_args=source_args,
        )
