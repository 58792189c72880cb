"""The lines a run prints when it ends."""

from __future__ import annotations

from feishu_tasks.settings import STATUSES

from .destination import describe
from .run import RunResult


def format_summary(result: RunResult) -> str:
    """Tasks by outcome, followers, requests and time, in a few greppable lines."""
    stats = result.stats
    by_status = ", ".join(f"{status} {stats.tasks_by_status.get(status, 0)}" for status in STATUSES)
    lines = [
        f"feishu-followers: loaded into {describe(result.options)} "
        f"(dataset {result.options.dataset}) in {result.elapsed_seconds:.1f} s",
        f"  tasks: {sum(stats.tasks_by_status.values())} ({by_status})",
        f"  followers loaded: {stats.followers} (in {len(result.load_ids)} dlt load(s))",
        f"  requests: {stats.requests} (retries {stats.retries}, rate limited {stats.rate_limited}, "
        f"token refreshes {stats.token_refreshes})",
    ]
    if result.step_seconds:
        steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in result.step_seconds.items())
        lines.append(f"  dlt steps: {steps}")
    if stats.skipped_by_budget:
        lines.append(f"  not fetched (--max-requests reached, next run): {stats.skipped_by_budget}")
    if stats.interrupted:
        lines.append(f"  stopped early: {stats.interrupted} task(s) in flight left for the next run")
    if result.stale_after_run is not None:
        lines.append(f"  stale tasks now: {result.stale_after_run}")
    if result.completed_pending:
        lines.append("  note: first completed the load left pending by an interrupted run")
    return "\n".join(lines)


def format_dry_run(result: RunResult) -> str:
    """One line per task the run would fetch (id, why, requests), then the totals."""
    planned = result.planned
    cap = result.options.max_requests
    lines, total, within_cap = [], 0, 0
    for task_id, reason in planned:
        cost = result.planned_requests.get(task_id, 1)
        total += cost
        if cap is None or total <= cap:
            within_cap += 1
        lines.append(f"{task_id}\t{reason}\t{cost}")
    by_reason = {
        reason: sum(1 for _, r in planned if r == reason) for reason in ("given", "discovered", "stale")
    }
    lines.append(
        f"dry run: would fetch {len(planned)} tasks ("
        + ", ".join(f"{reason} {count}" for reason, count in by_reason.items())
        + f") in about {total} follower requests"
        + (f" plus {result.stats.sent} listing requests already made" if result.stats.sent else "")
    )
    if cap is not None:
        lines.append(f"  --max-requests {cap}: about {within_cap} of them this run, the rest in later runs")
    return "\n".join(lines)
