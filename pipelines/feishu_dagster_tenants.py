"""Dagster recipe for a store app: one dynamic partition per tenant, each its own dlt pipeline.

Copy this file into your Dagster project, set dlt's config (env vars or ``.dlt/*.toml``), and run::

    pip install "feishu-task-followers[dagster]"
    export SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID=cli_xxx
    export SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET=xxx
    export SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE=store
    export SOURCES__FEISHU_TASKS__TICKET_JOURNAL=/data/feishu_followers.journal.sqlite  # where listen writes
    export SOURCES__FEISHU_TASKS__ALL_TASKLISTS=true
    export DESTINATION__DUCKDB__CREDENTIALS=/data/feishu_followers.duckdb
    dagster dev -f feishu_dagster_tenants.py

``feishu-followers listen --journal <the ticket journal>`` receives the app's events: the
``app_ticket`` the tokens come from, and the installs. The ``feishu_tenants`` sensor adds a
partition for each tenant the journal shows installed and on, and starts its first load; the
hourly schedule loads every partition. Each partition is its own dlt pipeline
(``feishu_followers__<tenant_key>``: its own state and pending loads) into the one dataset,
every row carrying its ``tenant_key``. Run them one at a time on DuckDB (a tag concurrency limit
of 1 on ``feishu/dataset``, or the default executor): one file takes one writer.
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
    DynamicPartitionsDefinition,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)
from dagster_dlt import DagsterDltResource, dlt_assets
from dlt.extract import DltSource

from feishu_followers.post_load import after_load
from feishu_tasks import FeishuUserCredentials, feishu_tasks
from feishu_tasks.journal import Journal
from feishu_tasks.store_app import check_tenant_key, default_ticket_journal, tenant_pipeline_name

PIPELINE_NAME = "feishu_followers"
DATASET_NAME = "feishu_tasks"
SCHEDULE = "0 * * * *"
TENANTS_EVERY_SECONDS = 60  # how often the sensor looks for new installs
SERVING = ("installed", "active")

tenants = DynamicPartitionsDefinition(name="feishu_tenants")


def tenant_pipeline(tenant_key: str) -> dlt.Pipeline:
    """The tenant's own dlt pipeline into the shared dataset (one DuckDB file for all tenants)."""
    kind: str = dlt.config.get(f"pipelines.{PIPELINE_NAME}.destination_type", str) or "duckdb"
    destination: Any = kind
    if kind == "duckdb" and not dlt.config.get("destination.duckdb.credentials"):
        destination = dlt.destinations.duckdb(str(Path(f"{PIPELINE_NAME}.duckdb").resolve()))
    # the tenants' pipelines sit beside the recipe's own (PIPELINES__FEISHU_FOLLOWERS__PIPELINES_DIR)
    pipelines_dir: str | None = dlt.config.get(f"pipelines.{PIPELINE_NAME}.pipelines_dir", str)
    return dlt.pipeline(
        pipeline_name=tenant_pipeline_name(PIPELINE_NAME, tenant_key),
        destination=destination,
        dataset_name=DATASET_NAME,
        pipelines_dir=pipelines_dir,
    )


def asset_names_source() -> DltSource:
    """The source's shape (one asset per table), to name the assets; it never runs."""
    return feishu_tasks(
        credentials=FeishuUserCredentials(user_access_token="names-the-assets-only"), tenant_key="names-only"
    )


def ticket_journal() -> Path:
    configured: str | None = dlt.config.get("sources.feishu_tasks.ticket_journal", str)
    return Path(configured) if configured else default_ticket_journal()


@dlt_assets(
    dlt_source=asset_names_source(),
    dlt_pipeline=dlt.pipeline(pipeline_name=PIPELINE_NAME, destination="duckdb", dataset_name=DATASET_NAME),
    name="feishu_tenant_tasks",
    group_name="feishu",
    partitions_def=tenants,
    op_tags={"feishu/dataset": DATASET_NAME},
)
def feishu_tenant_assets(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
    """One tenant's load (the partition's key), then the history and views."""
    tenant_key = context.partition_key
    pipeline = tenant_pipeline(tenant_key)
    source = feishu_tasks(tenant_key=tenant_key, ticket_journal=str(ticket_journal()))
    yield from dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
    after_load(pipeline)
    context.log.info(f"tenant {tenant_key}: follow history and views updated")


# Partitioned by tenant as its asset is (Dagster infers the partitions from the selection).
feishu_tenants_job = define_asset_job(
    "feishu_tenants_job", selection=AssetSelection.assets(feishu_tenant_assets)
)


@sensor(job=feishu_tenants_job, minimum_interval_seconds=TENANTS_EVERY_SECONDS)
def feishu_tenants(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    """A partition, and its first load, for each tenant ``listen`` recorded as installed and on."""
    path = ticket_journal()
    if not path.exists():
        return SkipReason(f"no journal at {path}: run feishu-followers listen with --journal {path}")
    with Journal(path) as journal:
        serving = sorted(key for key, status in journal.tenants().items() if status in SERVING)
    known = set(context.instance.get_dynamic_partitions(tenants.name))
    new = [check_tenant_key(key) for key in serving if key not in known]
    if not new:
        return SkipReason(f"no new tenant ({len(known)} known)")
    return SensorResult(
        run_requests=[RunRequest(partition_key=key) for key in new],
        dynamic_partitions_requests=[tenants.build_add_request(new)],
    )


@schedule(job=feishu_tenants_job, cron_schedule=SCHEDULE)
def feishu_tenants_hourly(context: ScheduleEvaluationContext) -> Iterator[RunRequest]:
    """Every tenant's load, every hour."""
    for key in context.instance.get_dynamic_partitions(tenants.name):
        yield RunRequest(partition_key=key)


defs = Definitions(
    assets=[feishu_tenant_assets],
    jobs=[feishu_tenants_job],
    schedules=[feishu_tenants_hourly],
    sensors=[feishu_tenants],
    resources={"dlt": DagsterDltResource()},
)
