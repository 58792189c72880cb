"""Run-level options: a command-line flag wins, else dlt config, else the default.

dlt's providers (``.dlt/config.toml``, ``.dlt/secrets.toml``, env vars) are the one place
configuration comes from; ``[sources.feishu_tasks]`` (or ``[feishu_tasks]``) holds both source
and run options so a scheduled job can be configured without flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dlt

from .selection import parse_duration

SECTION = "feishu_tasks"

# Source arguments that a flag may set; the rest dlt resolves inside the source.
SOURCE_FLAGS = (
    "base_url",
    "user_id_type",
    "concurrency",
    "max_rps",
    "max_rpm",
)


def from_config(name: str, default: Any) -> Any:
    """``sources.feishu_tasks.<name>`` (where the source's own settings live, so also
    ``SOURCES__FEISHU_TASKS__<NAME>``), else ``feishu_tasks.<name>``, from dlt's providers, or ``default``."""
    for key in (f"sources.{SECTION}.{name}", f"{SECTION}.{name}"):
        value: Any = dlt.config.get(key)
        if value is not None:
            return value
    return default


@dataclass
class RunOptions:
    """What one ``feishu-followers run`` does."""

    task_ids: list[str] = field(default_factory=list)
    task_ids_file: str | None = None
    task_ids_query: str | None = None
    discover: bool = False
    destination: str = "duckdb"  # a dlt destination name; its credentials come from dlt config
    duckdb_path: str = "./feishu_tasks.duckdb"
    dataset: str = "feishu_tasks"
    pipeline_name: str = "feishu_tasks"
    pipelines_dir: str | None = None
    duckdb_memory_limit: str | None = "256MB"
    quiet: bool = False
    full_refresh: bool = False
    stale_after: timedelta | None = None
    max_requests: int | None = None
    dry_run: bool = False
    source_args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(cls, flags: dict[str, Any]) -> RunOptions:
        """Merge explicit flags (None = not given) over dlt config and defaults."""

        def pick(name: str, default: Any) -> Any:
            return flags[name] if flags.get(name) is not None else from_config(name, default)

        source_args = {name: flags[name] for name in SOURCE_FLAGS if flags.get(name) is not None}
        for extra in ("app_id", "app_secret", "user_access_token"):
            if flags.get(extra) is not None:  # only the demo passes these (its own fake app)
                source_args[extra] = flags[extra]
        if flags.get("discover_lookback") is not None:
            source_args["discover_lookback_seconds"] = int(
                parse_duration(flags["discover_lookback"]).total_seconds()
            )
        stale_after = pick("stale_after", None)
        max_requests = pick("max_requests", None)
        return cls(
            task_ids=list(flags.get("task_ids") or []),
            task_ids_file=flags.get("task_ids_file"),
            task_ids_query=flags.get("task_ids_query"),
            discover=bool(flags.get("discover")) or bool(from_config("discover", False)),
            destination=str(pick("destination", cls.destination)),
            duckdb_path=str(pick("duckdb", cls.duckdb_path)),
            dataset=str(pick("dataset", cls.dataset)),
            pipeline_name=str(pick("pipeline_name", cls.pipeline_name)),
            pipelines_dir=pick("pipelines_dir", None),
            duckdb_memory_limit=pick("duckdb_memory_limit", cls.duckdb_memory_limit) or None,
            quiet=bool(flags.get("quiet")) or bool(from_config("quiet", False)),
            full_refresh=bool(flags.get("full_refresh")),
            stale_after=parse_duration(stale_after) if stale_after is not None else None,
            max_requests=int(max_requests) if max_requests is not None else None,
            dry_run=bool(flags.get("dry_run")),
            source_args=source_args,
        )
