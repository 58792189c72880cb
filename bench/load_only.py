"""The load step alone: 1M generated follower rows through our Arrow tables and dlt's merge.

No HTTP: outcomes are generated, so this isolates normalize + load (and their memory) from
fetching. Used for the merge-key and memory-limit experiments in BENCHMARKS.md.

    python bench/load_only.py --tasks 100000 --rerun                 # first load, then a re-load
    python bench/load_only.py --tasks 100000 --rerun --with-primary-key   # the hints we dropped
    python bench/load_only.py --tasks 100000 --memory-limit 64MB --threads 1
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials  # noqa: E402

from feishu_tasks import FOLLOWERS_HINTS, ID_LIST_HINTS, STATUS_HINTS  # noqa: E402
from feishu_tasks.items import TaskOutcome  # noqa: E402
from feishu_tasks.pages import Follower  # noqa: E402
from feishu_tasks.rows import followers_table, id_list_table, status_table  # noqa: E402


def outcomes(tasks: int, followers: int, seed: int = 1) -> Iterator[list[TaskOutcome]]:
    rng, now, batch = random.Random(seed), datetime.now(UTC), []
    for _ in range(tasks):
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        people = [Follower(f"ou_{rng.getrandbits(128):032x}") for _ in range(followers)]
        batch.append(TaskOutcome(task_id, "ok", now, people, pages=1))
        if len(batch) == 2_000:
            yield batch
            batch = []
    if batch:
        yield batch


def with_primary_key() -> Any:
    """The follower table's hints as they were before: primary key AND merge key (for comparison)."""
    return dlt.mark.make_hints(
        table_name="task_followers",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key=("task_id", "follower_id"),
        merge_key="task_id",
        columns={"_tombstone": {"data_type": "bool", "hard_delete": True}},
    )


def items(tasks: int, followers: int, follower_hints: Any) -> Iterator[Any]:
    for batch in outcomes(tasks, followers):
        yield dlt.mark.with_hints(
            followers_table(batch, "open_id"), follower_hints, create_table_variant=True
        )
        yield dlt.mark.with_hints(id_list_table(batch), ID_LIST_HINTS, create_table_variant=True)
        yield dlt.mark.with_hints(status_table(batch, "open_id", {}), STATUS_HINTS, create_table_variant=True)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--followers", type=int, default=10)
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 256MB (default: DuckDB's)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's)")
    parser.add_argument("--rerun", action="store_true", help="load the same rows again into full tables")
    parser.add_argument("--with-primary-key", action="store_true", help="declare (task_id, follower_id) too")
    args = parser.parse_args()
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    workdir = Path(tempfile.mkdtemp(prefix="load-only-"))
    credentials = DuckDbCredentials(str(workdir / "load.duckdb"))
    settings = {"memory_limit": args.memory_limit, "threads": args.threads}
    credentials.global_config = {key: value for key, value in settings.items() if value} or None
    pipeline = dlt.pipeline(
        "load_only",
        destination=dlt.destinations.duckdb(credentials),
        dataset_name="d",
        pipelines_dir=str(workdir),
    )
    for label in ("first load", "re-load")[: 2 if args.rerun else 1]:
        hints = with_primary_key() if args.with_primary_key else FOLLOWERS_HINTS
        pipeline.extract(dlt.resource(items(args.tasks, args.followers, hints), name="followers"))
        started = time.monotonic()
        pipeline.normalize()
        normalized = time.monotonic()
        pipeline.load()
        loaded = time.monotonic()
        print(
            f"{label}: {args.tasks * args.followers:,} rows, normalize {normalized - started:.2f} s, "
            f"load {loaded - normalized:.2f} s, peak RSS so far {peak_mb():.0f} MB"
        )


if __name__ == "__main__":
    main()
