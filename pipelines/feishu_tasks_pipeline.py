"""Example pipeline: Feishu / Lark task followers into any dlt destination.

Copy this file into your dlt project, set the app's credentials, and run it:

    export SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID=cli_xxxxxxxx
    export SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET=...
    python feishu_tasks_pipeline.py                # DuckDB: ./feishu_followers.duckdb, here
    python feishu_tasks_pipeline.py postgres       # credentials from dlt config, e.g.
                                                   # DESTINATION__POSTGRES__CREDENTIALS=postgresql://...

It loads every task list the app is a member of (add the app to the lists it should read, as
a viewer), their tasks and those tasks' followers. More comes from dlt config like any verified
source's options: ``.dlt/config.toml`` (``[sources.feishu_tasks] task_ids = [...]``,
``discover = true``) or env vars such as ``SOURCES__FEISHU_TASKS__DISCOVER=true``; the
credentials from ``.dlt/secrets.toml`` (``[sources.feishu_tasks.credentials] app_id / app_secret``)
or the env vars above.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dlt

from feishu_followers.post_load import after_load
from feishu_tasks import feishu_tasks


def load_followers(destination: str = "duckdb") -> None:
    """Every task list the app is a member of: lists, tasks, followers, history and views."""
    # ./feishu_followers.duckdb, as an absolute path: dlt would put a relative one (or its
    # default file) in the folder where the pipeline first ran, whichever folder runs it now.
    duckdb_file = dlt.destinations.duckdb(str(Path("feishu_followers.duckdb").resolve()))
    pipeline = dlt.pipeline(
        pipeline_name="feishu_followers",
        destination=duckdb_file if destination == "duckdb" else destination,
        dataset_name="feishu_tasks",  # not named like the DuckDB file: DuckDB could not tell them apart
    )
    print(pipeline.run(feishu_tasks(all_tasklists=True, followers_api="auto")))
    after_load(pipeline)  # the follow history and the analyst views, as the CLI makes them


def load_some_tasks(task_ids: list[str], destination: str = "duckdb") -> None:
    """Load the followers of a few tasks given in code, without the task objects or lists."""
    duckdb_file = dlt.destinations.duckdb(str(Path("feishu_followers.duckdb").resolve()))
    pipeline = dlt.pipeline(
        pipeline_name="feishu_followers",
        destination=duckdb_file if destination == "duckdb" else destination,
        dataset_name="feishu_tasks",
    )
    source = feishu_tasks(task_ids=task_ids).with_resources(
        "task_followers", "task_followers__id_list", "task_fetch_status"
    )
    print(pipeline.run(source))
    after_load(pipeline)


if __name__ == "__main__":
    load_followers(sys.argv[1] if len(sys.argv) > 1 else "duckdb")
