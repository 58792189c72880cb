"""Airflow recipe: load the Feishu task followers every hour with dlt's ``PipelineTasksGroup``.

Copy this file into your ``dags/`` folder, put dlt's config where the workers see it (env vars,
or ``.dlt/*.toml`` in the dags folder, where ``PipelineTasksGroup`` points dlt), and install::

    pip install "feishu-task-followers[airflow]"
    SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID=cli_xxx
    SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET=xxx
    SOURCES__FEISHU_TASKS__DISCOVER=true
    DESTINATION__DUCKDB__CREDENTIALS=/data/feishu_followers.duckdb   # an absolute path, see below

Parsing this file calls no API and reads no secret: the group is given a function that builds
the source, and ``PipelineTasksGroup`` calls it when the task runs. Each run starts from a new
pipeline folder and dlt restores the discover cursor from the destination's dlt state.
DuckDB needs an absolute path: dlt would otherwise put the file in the group's temporary folder
(and only one worker can write it: use the LocalExecutor, or a warehouse). Another destination:
set ``PIPELINES__FEISHU_FOLLOWERS__DESTINATION_TYPE`` (e.g. ``postgres``) and its credentials.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import dlt
from dlt.extract import DltSource
from dlt.helpers.airflow_helper import DEFAULT_RETRY_BACKOFF, PipelineTasksGroup

from feishu_followers.post_load import after_load
from feishu_tasks import feishu_tasks

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import dag
except ImportError:  # Airflow 2
    from airflow.decorators import dag  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.operators.python import PythonOperator  # type: ignore[no-redef,unused-ignore]

PIPELINE_NAME = "feishu_followers"
DATASET_NAME = "feishu_tasks"


def feishu_pipeline() -> dlt.Pipeline:
    """The dlt pipeline: DuckDB unless dlt config names another destination for it."""
    destination: str = dlt.config.get(f"pipelines.{PIPELINE_NAME}.destination_type", str) or "duckdb"
    return dlt.pipeline(pipeline_name=PIPELINE_NAME, destination=destination, dataset_name=DATASET_NAME)


def feishu_source() -> DltSource:
    """The source, built from dlt config when the task runs (a source object fetches only once)."""
    return feishu_tasks()


def derive_history() -> None:
    """The follow history and the views, from the state and schema restored from the destination.

    A task of its own: ``PipelineTasksGroup`` has no step after the run, and wipes the load
    task's pipeline folder when it ends.
    """
    pipeline = feishu_pipeline()
    try:
        pipeline.sync_destination()
        after_load(pipeline)
    finally:
        shutil.rmtree(pipeline.working_dir, ignore_errors=True)


@dag(
    dag_id="feishu_followers",
    schedule="0 * * * *",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # a load and its history before the next load
)
def feishu_followers() -> None:
    # The group first: it sets the per-run data folder that the pipeline must be created in.
    # dlt retries the load step (the destination); the source retries its own requests.
    tasks = PipelineTasksGroup(PIPELINE_NAME, wipe_local_data=True, retry_policy=DEFAULT_RETRY_BACKOFF)
    # retries=0: a whole new task would fetch every task again, against the API quota.
    (load,) = tasks.add_run(feishu_pipeline(), feishu_source, decompose="none", retries=0)
    with tasks:
        history = PythonOperator(
            task_id="after_load",
            python_callable=derive_history,
            retries=2,  # idempotent, and it catches up on every load not yet applied
            retry_delay=timedelta(minutes=1),
        )
    load >> history


feishu_followers()
