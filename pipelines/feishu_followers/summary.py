"""What a run prints when it ends: a few greppable lines, or one JSON object for a scheduler."""

from __future__ import annotations

import json
from typing import Any

from feishu_tasks.settings import ALL_STATUSES, DEFAULT_MAX_RPM, DEFAULT_MAX_RPS, STATUS_OK, STATUSES
from feishu_tasks.stats import FetchStats

from .destination import describe
from .eta import paced_by
from .run import RunResult


def tasks_per_status(stats: FetchStats) -> dict[str, int]:
    """Tasks per outcome: the usual ones always, a deleted count where there is one."""
    counts = {status: stats.tasks_by_status.get(status, 0) for status in STATUSES}
    return counts | {s: n for s in ALL_STATUSES if (n := stats.tasks_by_status.get(s, 0)) and s not in counts}


def fetch_seconds(stats: FetchStats) -> float | None:
    """How long the fetch took, or None if it never ran."""
    return stats.finished_at - stats.started_at if stats.finished_at is not None else None


def pacing_used(stats: FetchStats) -> tuple[str, float] | None:
    """The limit that made the fetch as long as it was (``--max-rpm`` / ``--max-rps``) and its rate."""
    seconds, rules = fetch_seconds(stats), stats.pacing
    if seconds is None or rules is None:
        return None
    limit = paced_by(stats.requests, seconds, rules)
    if limit == "max_rpm" and rules.max_rpm:
        return "--max-rpm", rules.max_rpm / 60
    if limit == "max_rps" and rules.max_rps:
        return "--max-rps", rules.max_rps
    return None


def pacing_line(stats: FetchStats) -> str | None:
    """``paced at 16.7 req/s: Feishu's 1,000/min quota; see --max-rpm``, when the pacing held the run."""
    used = pacing_used(stats)
    if used is None or stats.pacing is None:
        return None
    flag, rate = used
    configured = stats.pacing.max_rpm if flag == "--max-rpm" else stats.pacing.max_rps
    quota, unit = (DEFAULT_MAX_RPM, "min") if flag == "--max-rpm" else (DEFAULT_MAX_RPS, "s")
    if configured == quota:
        return f"  paced at {round(rate, 1):g} req/s: Feishu's {quota:,g}/{unit} quota; see {flag}"
    return f"  paced at {round(rate, 1):g} req/s: {flag} {configured:g} (Feishu's quota: {quota:,g}/{unit})"


def not_ok_line(result: RunResult) -> str | None:
    """Where to look when tasks did not load: the status table, with the query."""
    stats = result.stats
    not_ok = sum(count for status, count in stats.tasks_by_status.items() if status != STATUS_OK)
    if not not_ok:
        return None
    table = f"{result.options.dataset}.task_fetch_status"
    return f"  next: {not_ok} task(s) not ok; see select * from {table} where status <> 'ok'"


def _by_status(stats: FetchStats) -> str:
    """``ok 294, invalid_task 3, no_permission 2, failed 1``: every status, zeros included."""
    return ", ".join(f"{status} {count}" for status, count in tasks_per_status(stats).items())


def outcome_line(result: RunResult) -> str:
    """The run in one line (``--quiet``): what was loaded where, by outcome, and where to look next."""
    stats = result.stats
    line = (
        f"feishu-followers: loaded {sum(stats.tasks_by_status.values())} task(s) ({_by_status(stats)}), "
        f"{stats.followers} followers, into {describe(result.options)} in {result.elapsed_seconds:.1f} s"
    )
    if stats.listing_problems:
        line += f"; {len(stats.listing_problems)} listing(s) broke off (see the summary without --quiet)"
    if stats.skipped_by_budget:
        line += f"; {stats.skipped_by_budget} not fetched (--max-requests reached, next run)"
    if stats.rate_limit_stop:
        line += f"; {stats.skipped_by_rate_limit} not fetched (rate limited too long, next run)"
    not_ok = not_ok_line(result)
    return line + (f"; {not_ok.strip()}" if not_ok else "")


def _tasklists_line(stats: FetchStats) -> list[str]:
    lists = stats.tasklists_by_status
    if not lists:
        return []
    counts = ", ".join(f"{status} {count}" for status, count in sorted(lists.items()))
    return [f"  task lists: {sum(lists.values())} ({counts})"]


def format_summary(result: RunResult) -> str:
    """Tasks by outcome, followers, requests and time, in a few greppable lines: this run's figures."""
    stats = result.stats
    lines = [
        f"feishu-followers: this run loaded into {describe(result.options)} "
        f"(dataset {result.options.dataset}) in {result.elapsed_seconds:.1f} s",
        *_tasklists_line(stats),
        f"  tasks: {sum(stats.tasks_by_status.values())} ({_by_status(stats)})",
        f"  followers loaded: {stats.followers} (in {len(result.load_ids)} dlt load(s))",
        f"  requests: {stats.requests} (retries {stats.retries}, rate limited {stats.rate_limited}, "
        f"token refreshes {stats.token_refreshes})",
    ]
    if result.step_seconds:
        steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in result.step_seconds.items())
        lines.append(f"  dlt steps: {steps}")
    if stats.skipped_by_budget:
        lines.append(f"  not fetched (--max-requests reached, next run): {stats.skipped_by_budget}")
    if stats.rate_limit_stop:
        lines.append(f"  not fetched (rate limited too long, next run): {stats.skipped_by_rate_limit}")
    lines += [f"  {problem} (the tasks found before it were fetched)" for problem in stats.listing_problems]
    if stats.interrupted:
        lines.append(f"  stopped early: {stats.interrupted} task(s) in flight left for the next run")
    if result.stale_after_run is not None:
        lines.append(f"  stale tasks now: {result.stale_after_run}")
    if result.completed_pending:
        lines.append("  note: first completed the load left pending by an interrupted run")
    lines += [line for line in (pacing_line(stats), not_ok_line(result)) if line]
    return "\n".join(lines)


def summary_json(result: RunResult, stopped_by: str | None = None) -> dict[str, Any]:
    """The summary as data for a scheduler (``--json``); docs/progress.md lists the fields."""
    stats = result.stats
    rules = stats.pacing
    used = pacing_used(stats)
    seconds = fetch_seconds(stats)
    return {
        "destination": result.options.destination,
        "duckdb": result.options.duckdb_path if result.options.destination == "duckdb" else None,
        "dataset": result.options.dataset,
        "elapsed_seconds": round(result.elapsed_seconds, 3),
        "fetch_seconds": None if seconds is None else round(seconds, 3),
        "stopped_by": stopped_by,
        "tasks": {"total": stats.tasks_done, **tasks_per_status(stats)},
        "tasklists": dict(stats.tasklists_by_status),
        "listing_problems": list(stats.listing_problems),
        "not_fetched": {
            "max_requests": stats.skipped_by_budget,
            "stopped": stats.interrupted,
            "rate_limited": stats.skipped_by_rate_limit,
        },
        "rate_limit_stop": stats.rate_limit_stop,
        "followers": stats.followers,
        "requests": stats.requests,
        "retries": stats.retries,
        "rate_limited": stats.rate_limited,
        "token_refreshes": stats.token_refreshes,
        "load_ids": list(result.load_ids),
        "pacing": {
            "max_rps": rules.max_rps if rules else None,
            "max_rpm": rules.max_rpm if rules else None,
            "paced_by": used[0].lstrip("-").replace("-", "_") if used else None,
            "paced_rps": round(used[1], 3) if used else None,
        },
        "step_seconds": {name: round(value, 3) for name, value in result.step_seconds.items()},
        "stale_after_run": result.stale_after_run,
        "completed_pending": result.completed_pending,
    }


def format_json(result: RunResult, stopped_by: str | None = None) -> str:
    """One line of JSON: ``summary_json``."""
    return json.dumps(summary_json(result, stopped_by), separators=(",", ":"))


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
