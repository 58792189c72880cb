"""Run-level options: a command-line flag wins, else dlt config, else the default.

dlt's providers (``.dlt/config.toml``, ``.dlt/secrets.toml``, env vars) are the one place
configuration comes from; ``[sources.feishu_tasks]`` holds both source and run options so a
scheduled job can be configured without flags.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
from dlt.common.pipeline import get_dlt_pipelines_dir

from feishu_tasks.arguments import CENTURY, RULES
from feishu_tasks.errors import ConfigError, FatalError
from feishu_tasks.journal import default_journal_path

from .budget import DEFAULT_BUDGET, MIN_BUDGET, MemoryPlan, parse_size, plan_memory

# --------------------------------------------------------------------------------------- durations
# Durations as people write them in flags and config: ``90s``, ``15m``, ``6h``, ``7d``, ``2w``.
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
LONGEST = timedelta(seconds=CENTURY)  # the source's bound on its seconds arguments too
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``7d``, ``2w`` or plain seconds."""
    match = _DURATION.fullmatch(str(text))
    if not match:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 15m, 6h, 7d)")
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds > LONGEST.total_seconds():  # datetime arithmetic overflows long before infinity
        raise ConfigError(f"not a usable duration: {text!r} is longer than 100 years")
    return timedelta(seconds=seconds)


SECTION = "sources.feishu_tasks"
# The pipeline's name, as in the example pipeline and the Dagster and Airflow recipes: one dlt
# state and one dataset whichever runs the load. (DuckDB's default file is named after it, never
# like the dataset.) The CLI's former name is migrated (migration.py).
PIPELINE_NAME = "feishu_followers"
NO_TASKS = (
    "no task ids given: use --task-id, --task-ids-file, --task-ids-query, --tasklist, "
    "--all-tasklists, --discover, --stale-after or --changed"
)

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


def _first_set(value: Any, otherwise: Callable[[], Any]) -> Any:
    """``value`` unless it is None (a zero duration is a value), else ``otherwise()``."""
    return otherwise() if value is None else value


def _configured(name: str) -> bool:
    return from_config(name, None) is not None


def _stale_after_seconds() -> timedelta | None:
    """``stale_after_seconds``, the source's name of ``stale_after`` (a number of seconds)."""
    seconds = from_config("stale_after_seconds", None)
    return None if seconds is None else timedelta(seconds=parsed("stale_after_seconds", seconds))


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


def _size(value: Any) -> str:
    parse_size(value)  # raises ValueError for what is not a size
    return str(value).strip()


def _budget(value: Any) -> str:
    if parse_size(value) < MIN_BUDGET:
        raise ValueError(value)
    return str(value).strip()


def _seconds(value: Any) -> float:
    return parse_duration(str(value)).total_seconds()


def in_source_range(name: str, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse``, then the source's own range check of its argument ``name`` (arguments.py): a
    value the CLI takes is one the source takes, whichever way it is given."""

    def check(value: Any) -> Any:
        number = parse(value)
        if not RULES[name].admits(number):
            raise ValueError(value)
        return number

    return check


def _number(value: Any) -> float:
    return float(str(value).strip())


# Run options read from flags or dlt config: name → (parser, what it accepts).
PARSERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "discover": (parse_bool, "true or false"),
    "changed": (parse_bool, "true or false"),
    "all_tasklists": (parse_bool, "true or false"),
    "tasklist_completed": (parse_bool, "true or false"),
    "quiet": (parse_bool, "true or false"),
    "full_refresh": (parse_bool, "true or false"),
    "max_requests": (in_source_range("max_requests", parse_count), "a whole number of requests"),
    "rows_per_load": (parse_count, "a whole number of rows (0 = one load)"),
    "memory_budget": (_budget, "a size such as 256MB or 1GB, at least 128MB"),
    "duckdb_memory_limit": (_size, "a size such as 64MB or 1GB"),
    "stale_after": (parse_duration, "a duration such as 90s, 15m, 6h or 7d"),
    "lock_timeout": (_seconds, "a duration such as 90s, 5m or 1h"),
    "discover_lookback": (_seconds, "a duration such as 6h or 1d"),
    # the source's name of --stale-after (README: SOURCES__FEISHU_TASKS__STALE_AFTER_SECONDS)
    "stale_after_seconds": (
        in_source_range("stale_after_seconds", _number),
        str(RULES["stale_after_seconds"]),
    ),
    "progress_interval": (_seconds, "a duration such as 30s or 5m (0 = no progress lines)"),
    "max_rate_limited": (
        in_source_range("max_rate_limited_seconds", _seconds),
        "a duration such as 90s, 5m or 1h, more than 0",
    ),
}


# Source arguments a flag may set, checked with the source's own ranges (the source checks its
# config values itself, in the same words).
FLAG_PARSERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "concurrency": (in_source_range("concurrency", parse_count), str(RULES["concurrency"])),
    "max_rps": (
        in_source_range("max_rps", _number),
        f"a number of requests per second: {RULES['max_rps']} (0 = no ceiling)",
    ),
    "max_rpm": (
        in_source_range("max_rpm", _number),
        f"a number of requests per minute: {RULES['max_rpm']} (0 = no ceiling)",
    ),
}
# The flag of a config key named otherwise (the source's name for what the flag sets).
FLAG_OF = {
    "stale_after_seconds": "--stale-after",
    "discover_lookback_seconds": "--discover-lookback",
    "max_rate_limited_seconds": "--max-rate-limited",
}


def parsed(name: str, value: Any) -> Any:
    """``value`` of run option ``name`` in its type; a ConfigError naming the key otherwise."""
    parse, accepts = PARSERS[name] if name in PARSERS else FLAG_PARSERS[name]
    try:
        return parse(value)
    except (ValueError, TypeError, FatalError):
        env = f"{SECTION}.{name}".upper().replace(".", "__")
        flag = FLAG_OF.get(name, f"--{name.replace('_', '-')}")
        raise ConfigError(
            f"{flag} / {SECTION}.{name} ({env}): cannot use {value!r}; expected {accepts}"
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
    pipeline_name: str = PIPELINE_NAME
    pipelines_dir: str | None = None
    memory_budget: str = DEFAULT_BUDGET  # the process's memory; sets DuckDB's limit and the parts
    duckdb_memory_limit: str | None = None  # DuckDB's share of the budget, when set explicitly
    quiet: bool = False
    verbose: bool = False  # dlt's own progress log, and a bug's traceback
    progress_interval: float = 30.0  # seconds between progress lines when not on a terminal (0 = none)
    full_refresh: bool = False
    stale_after: timedelta | None = None
    changed: bool = False  # read the tasks the change journal marks
    journal: str | None = None  # the change journal's path (None: beside the pipeline's working folder)
    max_requests: int | None = None
    dry_run: bool = False
    rows_per_load: int | None = None  # follower rows per dlt load: None = from the budget, 0 = one load
    lock_timeout_seconds: float = 300.0
    source_args: dict[str, Any] = field(default_factory=dict)
    tenants: list[str] = field(default_factory=list)  # a store app's tenants to load (--tenant)
    all_tenants: bool = False  # every installed, active tenant the journal knows (--all-tenants)
    tenant_key: str | None = None  # the one tenant this run loads (set per tenant by tenants.py)

    @classmethod
    def resolve(cls, flags: dict[str, Any]) -> RunOptions:
        """Merge explicit flags (None = not given) over dlt config and defaults.

        Flag values come typed (the command line parses them with ``parsed``, so a bad one is
        a usage error in the same words); config values are parsed here.
        """

        def pick(name: str, default: Any) -> Any:
            return flags[name] if flags.get(name) is not None else from_config(name, default)

        def typed(name: str, default: Any) -> Any:
            if flags.get(name) is not None:
                return flags[name]
            value = from_config(name, None)
            return default if value is None else parsed(name, value)

        source_args = {name: flags[name] for name in SOURCE_FLAGS if flags.get(name) is not None}
        if flags.get("discover_lookback") is not None:
            source_args["discover_lookback_seconds"] = int(flags["discover_lookback"])
        if flags.get("max_rate_limited") is not None:
            source_args["max_rate_limited_seconds"] = flags["max_rate_limited"]
        return cls(
            task_ids=list(flags.get("task_ids") or []) or _list_from_config("task_ids"),
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
            memory_budget=typed("memory_budget", cls.memory_budget),
            duckdb_memory_limit=typed("duckdb_memory_limit", None),
            quiet=bool(flags.get("quiet")) or typed("quiet", False),
            verbose=bool(flags.get("verbose")),
            progress_interval=typed("progress_interval", cls.progress_interval),
            full_refresh=bool(flags.get("full_refresh")) or typed("full_refresh", False),
            stale_after=_first_set(typed("stale_after", None), _stale_after_seconds),
            # the source reads a journal it is given: so does a run given one in config
            changed=bool(flags.get("changed")) or typed("changed", False) or _configured("journal"),
            journal=pick("journal", None),
            max_requests=typed("max_requests", None),
            dry_run=bool(flags.get("dry_run")),
            rows_per_load=typed("rows_per_load", None),
            lock_timeout_seconds=typed("lock_timeout", cls.lock_timeout_seconds),
            source_args=source_args,
            tenants=list(flags.get("tenants") or []),
            all_tenants=bool(flags.get("all_tenants")),
        )

    @property
    def memory(self) -> MemoryPlan:
        """DuckDB's settings and the size of a part, from the budget (see ``budget.py``)."""
        budget = parsed("memory_budget", self.memory_budget)
        limit = parsed("duckdb_memory_limit", self.duckdb_memory_limit) if self.duckdb_memory_limit else None
        return plan_memory(budget, limit, self.rows_per_load)

    def names_tasks(self) -> bool:
        """Whether any way to find tasks is given (ids, a file, a query, lists, discovery, the sweep,
        the change journal)."""
        listed = self.discover or self.tasklists or self.all_tasklists or self.changed
        given = self.task_ids or self.task_ids_file or self.task_ids_query
        return bool(listed or given or self.stale_after is not None)

    def journal_file(self) -> Path:
        """The change journal: ``--journal``, else beside the pipeline's working folder (where
        ``listen`` of the same pipeline options writes it)."""
        if self.journal:
            return Path(self.journal)
        return default_journal_path(self.pipelines_dir or get_dlt_pipelines_dir(), self.pipeline_name)

    def source_arguments(self, task_ids: Iterable[str]) -> dict[str, Any]:
        """The arguments of ``feishu_tasks(...)`` for this run; dlt config supplies the rest."""
        stale_seconds = self.stale_after.total_seconds() if self.stale_after is not None else None
        return {
            "task_ids": task_ids,
            "discover": self.discover,
            "tasklists": self.tasklists,
            "all_tasklists": self.all_tasklists,
            "tasklist_completed": self.tasklist_completed,
            "full_refresh": self.full_refresh,
            "stale_after_seconds": stale_seconds,
            "max_requests": self.max_requests,
            "journal": str(self.journal_file()) if self.changed else None,
            **self.source_args,
        }
