"""The comparison: dlt's generic ``rest_api`` source loading the same follower endpoint.

Run as its own process by ``run_bench.py`` (so its CPU and memory are its own):
``python bench/rest_api_baseline.py BASE_URL IDS_FILE DUCKDB PIPELINES_DIR``. Configured as
the issue asks: a parent resource of task ids, a parallelized child resource per task with a
cursor paginator on ``data.page_token`` (stop when ``has_more`` is false), bearer auth with a
tenant token fetched once, 32 extract workers (set here as EXTRACT__WORKERS unless given).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("EXTRACT__WORKERS", "32")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
import httpx  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402

APP_ID = os.environ.get("BENCH_APP_ID", "cli_demo")
APP_SECRET = os.environ.get("BENCH_APP_SECRET", "demo-secret")


def tenant_token(base_url: str) -> str:
    """One tenant token for the whole run (the simulator's default lifetime is 2 h)."""
    answer = httpx.post(
        f"{base_url}/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": APP_ID, "app_secret": APP_SECRET},
    )
    return str(answer.json()["tenant_access_token"])


def build_source(base_url: str, task_ids: list[str]) -> Any:
    @dlt.resource(name="tasks", selected=False)
    def tasks() -> Iterator[list[dict[str, str]]]:
        for start in range(0, len(task_ids), 1000):
            yield [{"id": task_id} for task_id in task_ids[start : start + 1000]]

    paginator = {
        "type": "cursor",
        "cursor_path": "data.page_token",
        "cursor_param": "page_token",
        "has_more_path": "data.has_more",
    }
    return rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "auth": {"type": "bearer", "token": tenant_token(base_url)},
                "paginator": paginator,
            },
            "resources": [
                tasks,
                {
                    "name": "rest_followers",
                    "parallelized": True,
                    "include_from_parent": ["id"],
                    "endpoint": {
                        "path": "open-apis/task/v1/tasks/{task_id}/followers",
                        "params": {
                            "task_id": {"type": "resolve", "resource": "tasks", "field": "id"},
                            "page_size": 50,
                            "user_id_type": "open_id",
                        },
                        "data_selector": "data.items",
                    },
                },
            ],
        },
        name="rest_api_followers",
    )


def main(argv: list[str]) -> None:
    base_url, ids_file, duckdb_path, pipelines_dir = argv
    with open(ids_file) as handle:
        task_ids = [line.strip() for line in handle if line.strip()]
    started = time.monotonic()
    pipeline = dlt.pipeline(
        pipeline_name="rest_api_followers",
        destination=dlt.destinations.duckdb(duckdb_path),
        dataset_name="rest_api",
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(build_source(base_url, task_ids))
    with pipeline.sql_client() as client:
        rows = client.execute_sql("select count(*) from rest_followers")[0][0]
    print(json.dumps({"seconds": time.monotonic() - started, "rows": rows}))


if __name__ == "__main__":
    main(sys.argv[1:])
