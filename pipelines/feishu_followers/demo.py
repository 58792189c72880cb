"""``feishu-followers demo``: the whole pipeline against the bundled simulator.

For people without a Feishu app: a simulated tenant with a realistic mix of tasks (many
followers, none, forbidden, failing, malformed ids, tasks only task v2 knows), task lists (one
the app may not read), and mild faults (429s, 5xx, HTML 502s). The run reads every task list the
app belongs to and lists the tasks it can see, as a real scheduled load would.
"""

from __future__ import annotations

import duckdb

from feishu_simulator import Faults, Simulator, World

from .options import RunOptions
from .run import run
from .summary import format_summary

DEMO_APP_ID = "cli_demo"
DEMO_APP_SECRET = "demo-secret"  # the simulator's own fake app, not a real credential


def demo_world(tasks: int, seed: int) -> tuple[World, list[str]]:
    """The simulated tenant, and extra ids that discovery cannot find (forbidden, unknown, bad)."""
    world = World.generate(tasks=tasks, seed=seed, v2_only=0.03)
    ids = world.task_ids()
    forbidden = ids[-3:]
    for task_id in forbidden:
        world.set_forbidden(task_id, True)
    extra = [*forbidden, "00000000-0000-4000-8000-000000000000", "not-a-task-id"]
    return world, extra


def run_demo(
    duckdb_path: str, tasks: int = 300, seed: int = 42, pipelines_dir: str | None = None, quiet: bool = False
) -> str:
    """Serve the simulator, load it into ``duckdb_path``, return the printed report."""
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
        options = RunOptions(
            task_ids=extra_ids,
            discover=True,
            all_tasklists=True,
            duckdb_path=duckdb_path,
            pipeline_name="feishu_tasks_demo",
            pipelines_dir=pipelines_dir,
            quiet=quiet,
            source_args={
                "base_url": sim.base_url,
                "credentials": {"app_id": DEMO_APP_ID, "app_secret": DEMO_APP_SECRET},
                "backoff_base_seconds": 0.05,
                "followers_api": "auto",  # v1, and v2 for the list tasks that v1 does not know
            },
        )
        result = run(options)
    return "\n".join([format_summary(result), "", highlights(duckdb_path, options.dataset)])


def highlights(duckdb_path: str, dataset: str) -> str:
    """The first questions an analyst asks, answered from the loaded tables."""
    with duckdb.connect(duckdb_path, read_only=True) as con:
        outcomes = con.execute(
            f"select status, count(*) from {dataset}.task_fetch_status group by 1 order by 2 desc"
        ).fetchall()
        lists = con.execute(
            f"select status, count(*) from {dataset}.tasklist_fetch_status group by 1 order by 2 desc"
        ).fetchall()
        top_tasks = con.execute(
            f"""select f.task_id, any_value(coalesce(t.summary, l.summary)), count(distinct f.follower_id) n
                from {dataset}.task_followers f left join {dataset}.tasks t on t.id = f.task_id
                left join {dataset}.tasklist_tasks l on l.task_guid = f.task_id
                group by 1 order by n desc, 1 limit 5"""
        ).fetchall()
        top_followers = con.execute(
            f"""select follower_id, count(*) as n from {dataset}.task_followers
                group by 1 order by n desc, 1 limit 5"""
        ).fetchall()
    lines = ["Task lists by outcome:"]
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
