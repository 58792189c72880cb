"""Example pipeline: Feishu / Lark task followers into any dlt destination.

Copy this file into your dlt project and run it:

    python feishu_tasks_pipeline.py                # DuckDB, ./feishu_followers.duckdb
    python feishu_tasks_pipeline.py postgres       # credentials from dlt config, e.g.
                                                   # DESTINATION__POSTGRES__CREDENTIALS=postgresql://...

Credentials and options come from dlt's config like any verified source's:
``.dlt/secrets.toml`` (``[sources.feishu_tasks.credentials] app_id / app_secret``) and
``.dlt/config.toml`` (``[sources.feishu_tasks] task_ids = [...]``, ``discover = true``), or env
vars such as ``SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID`` and ``SOURCES__FEISHU_TASKS__DISCOVER``.
"""

from __future__ import annotations

import sys

import dlt

from feishu_followers.post_load import after_load
from feishu_tasks import feishu_tasks

# dlt names a DuckDB file after the pipeline; it must not be named like the dataset
# (DuckDB could not tell the file's catalog "feishu_tasks" from the schema "feishu_tasks").


def load_followers(destination: str = "duckdb") -> None:
    """Load the configured tasks (``task_ids`` and/or ``discover``) with everything the CLI makes."""
    pipeline = dlt.pipeline(
        pipeline_name="feishu_followers", destination=destination, dataset_name="feishu_tasks"
    )
    load_info = pipeline.run(feishu_tasks())
    print(load_info)
    after_load(pipeline)  # the follow history and the analyst views


def load_some_tasks(task_ids: list[str], destination: str = "duckdb") -> None:
    """Load the followers of a few tasks given in code, without the task objects."""
    pipeline = dlt.pipeline(
        pipeline_name="feishu_followers", destination=destination, dataset_name="feishu_tasks"
    )
    source = feishu_tasks(task_ids=task_ids).with_resources(
        "task_followers", "task_followers__id_list", "task_fetch_status"
    )
    print(pipeline.run(source))
    after_load(pipeline)


if __name__ == "__main__":
    load_followers(sys.argv[1] if len(sys.argv) > 1 else "duckdb")
