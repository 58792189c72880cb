"""``feishu-followers demo``: the whole pipeline against the bundled simulator.

For people without a Feishu app: a simulated tenant with a realistic mix of tasks (many
followers, none, forbidden, failing, malformed ids, tasks only task v2 knows), task lists (one
the app may not read), and mild faults (429s, 5xx, HTML 502s). The run reads every task list the
app belongs to and lists the tasks it can see, as a real scheduled load would.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import duckdb

from feishu_simulator import Faults, Simulator, World

from .options import RunOptions
from .run import run
from .summary import format_summary

DEMO_APP_ID = "cli_demo"
DEMO_APP_SECRET = "demo-secret"  # the simulator's own fake app, not a real credential
DEMO_PIPELINE_NAME = "feishu_followers_demo"  # beside the real pipeline (feishu_followers), never it


def demo_world(tasks: int, seed: int) -> tuple[World, list[str]]:
    """The simulated tenant, and extra ids that discovery cannot find (forbidden, unknown, bad)."""
    world = World.generate(tasks=tasks, seed=seed, v2_only=0.03)
    ids = world.task_ids()
    forbidden = ids[-3:]
    for task_id in forbidden:
        world.set_forbidden(task_id, True)
    extra = [*forbidden, "00000000-0000-4000-8000-000000000000", "not-a-task-id"]
    return world, extra


def demo_run_options(
    base_url: str,
    duckdb_path: str,
    task_ids: list[str],
    pipelines_dir: str | None = None,
    quiet: bool = False,
    stale_after: timedelta | None = None,
    **source_args: Any,
) -> RunOptions:
    """A run against the simulated tenant, read as a scheduled load reads a real one: every task
    list the app belongs to (task v2 for the list tasks that v1 does not know), the tasks it can
    list, and ``task_ids``. The notebook's further loads use it too (``stale_after=0``: all again).
    """
    return RunOptions(
        task_ids=task_ids,
        discover=True,
        all_tasklists=True,
        duckdb_path=duckdb_path,
        pipeline_name=DEMO_PIPELINE_NAME,
        pipelines_dir=pipelines_dir,
        quiet=quiet,
        stale_after=stale_after,
        source_args={
            "base_url": base_url,
            "credentials": {"app_id": DEMO_APP_ID, "app_secret": DEMO_APP_SECRET},
            "backoff_base_seconds": 0.05,
            "followers_api": "auto",  # v1, and v2 for the list tasks that v1 does not know
            **source_args,
        },
    )


def run_demo(
    duckdb_path: str,
    tasks: int = 300,
    seed: int = 42,
    pipelines_dir: str | None = None,
    quiet: bool = False,
    follow: bool = True,
) -> str:
    """Serve the simulator, load it into ``duckdb_path``, return the printed report.

    ``follow``: then push a few changes as Feishu's events and load them as ``follow`` does.
    """
    world, extra_ids = demo_world(tasks, seed)
    faults = Faults(
        latency_ms=2,
        rate_limit_fraction=0.02,
        error_500_fraction=0.02,
        html_502_fraction=0.01,
        always_fail_tasks={world.task_ids()[1]},
        seed=seed,
    )
    with Simulator(world, faults=faults, app_id=DEMO_APP_ID, app_secret=DEMO_APP_SECRET) as sim:
        options = demo_run_options(sim.base_url, duckdb_path, extra_ids, pipelines_dir, quiet)
        result = run(options)
        followed = ["", demo_follow(sim, options, seed)] if follow else []
    return "\n".join([format_summary(result), "", highlights(duckdb_path, options.dataset), *followed])


def demo_follow(sim: Simulator, options: RunOptions, seed: int) -> str:
    """The follow phase's line, or why it was skipped (its receiver needs the events extra)."""
    try:
        from .demo_follow import follow_phase
    except ImportError as exc:
        missing = str(exc.name).split(".")[0]
        return f"Follow: skipped ({missing} is missing: pip install 'feishu-task-followers[events]')"
    return follow_phase(sim, options, seed)


def highlights(duckdb_path: str, dataset: str) -> str:
    """The first questions an analyst asks, answered from everything loaded so far (every run)."""
    with duckdb.connect(duckdb_path, read_only=True) as con:
        outcomes = con.execute(
            f"select status, count(*) from {dataset}.task_fetch_status group by 1 order by 2 desc"
        ).fetchall()
        lists = con.execute(
            f"select status, count(*) from {dataset}.tasklist_fetch_status group by 1 order by 2 desc"
        ).fetchall()
        top_tasks = con.execute(  # the view takes each task's summary from whichever table has it
            f"""select task_id, summary, followers from {dataset}.followers_per_task
                order by followers desc, task_id limit 5"""
        ).fetchall()
        top_followers = con.execute(
            f"""select follower_id, count(*) as n from {dataset}.task_followers
                group by 1 order by n desc, 1 limit 5"""
        ).fetchall()
    lines = [f"All that {duckdb_path} holds now (this run and any before it):", "Task lists by outcome:"]
    lines += [f"  {status:<14} {count}" for status, count in lists]
    lines.append("Tasks by outcome:")
    lines += [f"  {status:<14} {count}" for status, count in outcomes]
    lines.append("Most-followed tasks:")
    lines += [f"  {n:>4}  {task_id}  {summary or ''}" for task_id, summary, n in top_tasks]
    lines.append("Most active followers:")
    lines += [f"  {n:>4}  {follower}" for follower, n in top_followers]
    lines.append(
        f'Explore in Python: duckdb.connect("{duckdb_path}")'
        f'.sql("select * from {dataset}.task_followers limit 10").df()'
    )
    return "\n".join(lines)
