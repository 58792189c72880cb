"""Dagster recipe: the Feishu task follower tables as Dagster assets, loaded every hour.

Copy this file into your Dagster project, set dlt's config (env vars or ``.dlt/*.toml``), and run::

    pip install "feishu-task-followers[dagster]"
    export SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID=cli_xxx
    export SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET=xxx
    export SOURCES__FEISHU_TASKS__DISCOVER=true
    export DESTINATION__DUCKDB__CREDENTIALS=/data/feishu_followers.duckdb
    dagster dev -f feishu_dagster.py

With Feishu's task events (``feishu-followers listen`` writing a change journal), set
``SOURCES__FEISHU_TASKS__JOURNAL`` to the journal's path: every run then also reads the tasks the
journal marks, and the ``feishu_changes`` sensor starts a run when it has new ones (turn it on in
the UI).

Every source option is read from dlt config when a run starts, not when Dagster loads this file:
the webserver and the daemon need no Feishu secrets, and a missing one fails the run with dlt's
message naming the keys it tried. The discover cursor lives in dlt state at the destination;
``DagsterDltResource`` drops the local pipeline folder before each run and dlt restores the state
from there, so a run in a new container still lists only the tasks created since the cursor.
Another warehouse: set ``PIPELINES__FEISHU_FOLLOWERS__DESTINATION_TYPE`` (e.g. ``postgres``) and
its credentials (``DESTINATION__POSTGRES__CREDENTIALS``).
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations.
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Definitions,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)
from dagster_dlt import DagsterDltResource, dlt_assets
from dlt.extract import DltSource

from feishu_followers.post_load import after_load
from feishu_tasks import FeishuUserCredentials, feishu_tasks
from feishu_tasks.journal import Journal

PIPELINE_NAME = "feishu_followers"  # the pipeline folder and, for DuckDB, the file's default name
DATASET_NAME = "feishu_tasks"
SCHEDULE = "0 * * * *"  # hourly; Feishu's quota is per minute, so any interval works
CHANGES_EVERY_SECONDS = 30  # how often the sensor looks at the change journal


def feishu_pipeline() -> dlt.Pipeline:
    """The dlt pipeline: DuckDB unless dlt config names another destination for it."""
    destination: str = dlt.config.get(f"pipelines.{PIPELINE_NAME}.destination_type", str) or "duckdb"
    return dlt.pipeline(pipeline_name=PIPELINE_NAME, destination=destination, dataset_name=DATASET_NAME)


def asset_names_source() -> DltSource:
    """The source's shape (one asset per table), for Dagster to name the assets; it never runs.

    Given a placeholder token so that loading this file needs no secrets; every run builds
    its own source (``feishu_tasks()``) from dlt config.
    """
    return feishu_tasks(credentials=FeishuUserCredentials(user_access_token="names-the-assets-only"))


pipeline = feishu_pipeline()


@dlt_assets(dlt_source=asset_names_source(), dlt_pipeline=pipeline, name="feishu_tasks", group_name="feishu")
def feishu_tasks_assets(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
    """Load the configured tasks, then derive the follow history and refresh the views.

    The post-load step runs here, right after the load, not as a downstream asset: the history
    compares each load with the followers table as it is when applied, so it is exact only if
    applied before the next load replaces those rows, and a separate asset could be skipped or
    run late (a selection without it, a failed step) while another load goes ahead.
    """
    # A new source per run: a source object fetches once, and this process may run many times.
    yield from dlt.run(context=context, dlt_source=feishu_tasks())
    after_load(pipeline)
    context.log.info("follow history and views updated")


feishu_job = define_asset_job("feishu_followers_job", selection=AssetSelection.assets(feishu_tasks_assets))


@sensor(job=feishu_job, minimum_interval_seconds=CHANGES_EVERY_SECONDS)
def feishu_changes(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    """Start a load when the change journal (``feishu-followers listen``) has new changes.

    The journal is the source's own ``journal`` setting (``SOURCES__FEISHU_TASKS__JOURNAL``); the
    run reads every change since the position its dataset loaded, so the sensor's cursor only
    says which changes already started a run.
    """
    path: str | None = dlt.config.get("sources.feishu_tasks.journal", str)
    if not path or not Path(path).exists():
        return SkipReason(
            "no change journal: set SOURCES__FEISHU_TASKS__JOURNAL and run feishu-followers listen"
        )
    with Journal(path) as journal:
        newest = journal.last_position()
    if newest <= int(context.cursor or 0):
        return SkipReason(f"no change since position {context.cursor or 0}")
    return SensorResult(run_requests=[RunRequest(run_key=f"journal-{newest}")], cursor=str(newest))


defs = Definitions(
    assets=[feishu_tasks_assets],
    jobs=[feishu_job],
    schedules=[ScheduleDefinition(job=feishu_job, cron_schedule=SCHEDULE)],
    sensors=[feishu_changes],
    resources={"dlt": DagsterDltResource()},
)
