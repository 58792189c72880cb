"""Airflow recipe for a store app: one mapped task per tenant, every hour.

Copy this file into your ``dags/`` folder, put dlt's config where the workers see it, and install::

    pip install "feishu-task-followers[airflow]"
    SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID=cli_xxx
    SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET=xxx
    SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE=store
    SOURCES__FEISHU_TASKS__TICKET_JOURNAL=/data/feishu_followers.journal.sqlite   # where listen writes
    SOURCES__FEISHU_TASKS__ALL_TASKLISTS=true
    DESTINATION__DUCKDB__CREDENTIALS=/data/feishu_followers.duckdb                 # an absolute path

``tenants`` reads the tenants that ``feishu-followers listen`` recorded as installed and on; Airflow
maps ``load_tenant`` over them (dynamic task mapping), one task instance per tenant, each its own
dlt pipeline (``feishu_followers__<tenant_key>``) into the one dataset, every row carrying its
``tenant_key``. One tenant's failure fails its own task instance only. On DuckDB only one task
may write the file at a time: ``max_active_tis_per_dagrun=1`` (a warehouse can take more).
Parsing this file calls no API and reads no secret.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import dlt

from feishu_followers.post_load import after_load
from feishu_tasks import feishu_tasks
from feishu_tasks.journal import Journal
from feishu_tasks.store_app import check_tenant_key, default_ticket_journal, tenant_pipeline_name

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task  # type: ignore[no-redef,attr-defined,unused-ignore]

PIPELINE_NAME = "feishu_followers"
DATASET_NAME = "feishu_tasks"
SERVING = ("installed", "active")


def ticket_journal() -> Path:
    configured: str | None = dlt.config.get("sources.feishu_tasks.ticket_journal", str)
    return Path(configured) if configured else default_ticket_journal()


def tenant_pipeline(tenant_key: str) -> dlt.Pipeline:
    """The tenant's own dlt pipeline into the shared dataset (one DuckDB file for all tenants)."""
    kind: str = dlt.config.get(f"pipelines.{PIPELINE_NAME}.destination_type", str) or "duckdb"
    destination: Any = kind
    if kind == "duckdb" and not dlt.config.get("destination.duckdb.credentials"):
        destination = dlt.destinations.duckdb(str(Path(f"{PIPELINE_NAME}.duckdb").resolve()))
    pipelines_dir: str | None = dlt.config.get(f"pipelines.{PIPELINE_NAME}.pipelines_dir", str)
    return dlt.pipeline(
        pipeline_name=tenant_pipeline_name(PIPELINE_NAME, tenant_key),
        destination=destination,
        dataset_name=DATASET_NAME,
        pipelines_dir=pipelines_dir,
    )


def serving_tenants() -> list[str]:
    """The tenants the journal shows installed and on, each key checked."""
    path = ticket_journal()
    if not path.exists():
        return []
    with Journal(path) as journal:
        return sorted(check_tenant_key(k) for k, status in journal.tenants().items() if status in SERVING)


def load_one_tenant(tenant_key: str) -> str:
    """One tenant's load, then the history and views; the load info as text (for the task log)."""
    pipeline = tenant_pipeline(tenant_key)
    info = pipeline.run(feishu_tasks(tenant_key=tenant_key, ticket_journal=str(ticket_journal())))
    after_load(pipeline)
    return str(info)


@dag(
    dag_id="feishu_followers_tenants",
    schedule="0 * * * *",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
)
def feishu_followers_tenants() -> None:
    @task
    def tenants() -> list[str]:
        return serving_tenants()

    # retries=0: a retry would fetch the tenant's tasks again, against its quota
    @task(max_active_tis_per_dagrun=1, retries=0)
    def load_tenant(tenant_key: str) -> str:
        return load_one_tenant(tenant_key)

    load_tenant.expand(tenant_key=tenants())


feishu_followers_tenants()
