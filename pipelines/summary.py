"""The lines a run prints when it ends."""

from __future__ import annotations

from sources.feishu_tasks.settings import STATUSES

from .run import RunResult


def format_summary(result: RunResult) -> str:
    """Tasks by outcome, followers, requests and time, in a few greppable lines."""
    stats = result.stats
    by_status = ", ".join(f"{status} {stats.tasks_by_status.get(status, 0)}" for status in STATUSES)
    lines = [
        f"feishu-followers: loaded into {result.options.duckdb_path} "
        f"(dataset {result.options.dataset}) in {result.elapsed_seconds:.1f} s",
        f"  tasks: {sum(stats.tasks_by_status.values())} ({by_status})",
        f"  followers loaded: {stats.followers}",
        f"  requests: {stats.requests} (retries {stats.retries}, rate limited {stats.rate_limited}, "
        f"token refreshes {stats.token_refreshes})",
    ]
    if result.completed_pending:
        lines.append("  note: first completed the load left pending by an interrupted run")
    return "\n".join(lines)
