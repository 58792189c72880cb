"""The load side alone: generated follower rows through our Arrow tables, dlt's merge, the history.

No HTTP and no fetch: task outcomes are generated in batches, turned into the source's Arrow
tables (``feishu_tasks.rows``) and loaded with the registry's dlt hints, part by part, each
part followed by ``after_load`` (history and views), as ``feishu-followers run`` does. The
DuckDB destination is made by the CLI's own code from ``--memory-budget`` (or explicit
settings), so what is measured is what a run uses. Beside it, in the same process and on the
same machine state, a plain insert of the same rows (``create table as`` from Arrow) into a
fresh DuckDB file: the issue's comparison for "normalize + load".

    python bench/load_only.py --tasks 100000                    # 1M rows, one load, then a re-load
    python bench/load_only.py --tasks 100000 --rows-per-part 200000 --memory-budget 256MB
    python bench/load_only.py --tasks 100000 --duckdb-memory-limit 1GB --threads 2

Memory is sampled as in ``memory_profile.py`` (VmRSS, DuckDB's own, Arrow's) and reported per
step; peak RSS includes the generator's batch (a few MB).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
from memory_profile import Sampler, instrument_pools, peaks  # noqa: E402

from feishu_followers.destination import make_destination  # noqa: E402
from feishu_followers.options import RunOptions  # noqa: E402
from feishu_followers.post_load import after_load  # noqa: E402
from feishu_tasks.items import TaskOutcome  # noqa: E402
from feishu_tasks.pages import Follower  # noqa: E402
from feishu_tasks.resources import _with_load_id  # noqa: E402
from feishu_tasks.rows import followers_table, id_list_table, status_table  # noqa: E402
from feishu_tasks.tables import TASK_FETCH_STATUS, TASK_FOLLOWERS, TASK_FOLLOWERS_ID_LIST  # noqa: E402

BATCH_TASKS = 2_000  # tasks per Arrow batch, about what the fetch hands over


def outcomes(tasks: int, followers: int, seed: int) -> Iterator[list[TaskOutcome]]:
    """Batches of successful outcomes; the same seed gives the same tasks and followers."""
    rng, now, batch = random.Random(seed), datetime.now(UTC), []
    for _ in range(tasks):
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        people = [Follower(f"ou_{rng.getrandbits(128):032x}") for _ in range(followers)]
        batch.append(TaskOutcome(task_id, "ok", now, people, pages=1, api="v1"))
        if len(batch) == BATCH_TASKS:
            yield batch
            batch = []
    if batch:
        yield batch


def parts(tasks: int, followers: int, rows_per_part: int, seed: int) -> Iterator[Iterator[list[TaskOutcome]]]:
    """The outcomes cut into parts of about ``rows_per_part`` follower rows (0: one part)."""
    batches = outcomes(tasks, followers, seed)
    ahead = next(batches, None)

    def part() -> Iterator[list[TaskOutcome]]:
        nonlocal ahead
        rows = 0
        while ahead is not None:
            batch, ahead = ahead, next(batches, None)
            yield batch
            rows += sum(len(outcome.followers) for outcome in batch)
            if rows_per_part and rows >= rows_per_part:
                return

    while ahead is not None:
        yield part()  # consumed (extracted) before the loop looks again


def resources(batches: Iterator[list[TaskOutcome]]) -> list[Any]:
    """The three follower tables as the source declares them, from one pass over ``batches``."""

    @dlt.resource(name="generated", selected=False)
    def generated() -> Iterator[list[TaskOutcome]]:
        yield from batches

    def table(hints: dict[str, Any], make: Any) -> Any:
        def rows(batch: list[TaskOutcome]) -> Iterator[pa.Table]:
            yield _with_load_id(with_tenant_key(make(batch)))

        return dlt.transformer(data_from=generated, **hints)(rows)

    return [
        generated,
        table(TASK_FOLLOWERS.dlt_hints(), lambda batch: followers_table(batch, "open_id")),
        table(TASK_FOLLOWERS_ID_LIST.dlt_hints(), id_list_table),
        table(TASK_FETCH_STATUS.dlt_hints(), lambda batch: status_table(batch, "open_id", {})),
    ]


def with_tenant_key(rows: pa.Table) -> pa.Table:
    """The registry's common column, first, as the source adds it (a custom app's tenant: '')."""
    column = pa.array([""] * rows.num_rows, pa.string())
    return rows.add_column(0, pa.field("tenant_key", pa.string(), nullable=False), column)


SQL_KINDS = (  # what dlt's load and our post-load steps spend their time on, by statement
    ("copy parquet into staging", "read_parquet("),
    ("merge: delete replaced keys", "delete from"),
    ("merge: insert from staging", "insert into"),
    ("create or drop", "create "),
    ("update", "update "),
)


def trace_sql(spent: dict[str, float]) -> None:
    """Add the time of every statement dlt or we send to DuckDB to ``spent``, by kind."""
    from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

    original = DuckDbSqlClient.execute_query

    def kind_of(sql: str) -> str:
        text = sql.lower()
        return next((kind for kind, marker in SQL_KINDS if marker in text), "other (schema, state, loads)")

    @contextmanager
    def execute_query(self: Any, query: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        started = time.monotonic()
        with original(self, query, *args, **kwargs) as cursor:
            spent[kind_of(str(query))] = spent.get(kind_of(str(query)), 0.0) + time.monotonic() - started
            yield cursor

    DuckDbSqlClient.execute_query = execute_query  # type: ignore[method-assign]


def load_all(pipeline: dlt.Pipeline, sampler: Sampler, args: argparse.Namespace) -> dict[str, float]:
    """Every part: extract, normalize, load, history and views; seconds per step."""
    seconds: dict[str, float] = {}

    def timed(step: str, call: Any) -> None:
        sampler.on_step(step, True)
        started = time.monotonic()
        call()
        seconds[step] = seconds.get(step, 0.0) + time.monotonic() - started
        sampler.on_step(step, False)

    for part in parts(args.tasks, args.followers, args.rows_per_part, args.seed):
        timed("extract", lambda part=part: pipeline.extract(resources(part)))
        timed("normalize", pipeline.normalize)
        timed("load", pipeline.load)
        timed("history and views", lambda: after_load(pipeline))
    return seconds


def plain_insert(db: Path, settings: dict[str, Any]) -> float:
    """``create table as`` from an Arrow table of the same follower rows: the floor to compare with."""
    tables = [
        with_tenant_key(followers_table(batch, "open_id").drop_columns(["_tombstone"]))
        for batch in outcomes(ARGS.tasks, ARGS.followers, ARGS.seed)
    ]
    arrow_rows = pa.concat_tables(tables)
    started = time.monotonic()
    with duckdb.connect(str(db), config=settings) as con:
        con.register("arrow_rows", arrow_rows)
        con.execute("create table task_followers as select * from arrow_rows")
    return time.monotonic() - started


def merge_without_staging(pipeline: dlt.Pipeline, settings: dict[str, Any]) -> float:
    """What dlt's staging costs: the newest load's files merged straight into the final tables.

    Per table, in one transaction: delete the rows of the keys the file carries, insert its rows
    (tombstones left out), reading the parquet file twice instead of copying it into a staging
    table and reading that. The same semantics as dlt's delete-insert for our tables (each key's
    rows come whole in one load), so the difference is what staging adds.
    """
    (load_id,) = sorted(pipeline.list_completed_load_packages())[-1:]
    jobs = Path(pipeline.working_dir) / "load" / "loaded" / load_id / "completed_jobs"
    database = pipeline.destination.config_params["credentials"].database
    started = time.monotonic()
    with duckdb.connect(database, config=settings) as con:
        con.execute("begin")
        for file in sorted(jobs.glob("*.parquet")):
            table = file.name.split(".")[0]
            key = "task_id"
            source = f"read_parquet('{file}', hive_partitioning=false)"
            con.execute(f"delete from d.{table} where {key} in (select {key} from {source})")
            where = "where not _tombstone" if table != "task_fetch_status" else ""
            con.execute(f"insert into d.{table} by name select * from {source} {where}")
        con.execute("commit")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--followers", type=int, default=10, help="followers per task")
    parser.add_argument("--rows-per-part", type=int, default=0, help="follower rows per dlt load (0: one)")
    parser.add_argument("--memory-budget", help="as the CLI's --memory-budget")
    parser.add_argument("--duckdb-memory-limit", help="as the CLI's flag (overrides the budget's)")
    parser.add_argument(
        "--duckdb-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. threads=1; repeatable",
    )
    parser.add_argument("--trace-sql", action="store_true", help="time each kind of SQL statement")
    parser.add_argument("--once", action="store_true", help="no re-load of the same rows")
    parser.add_argument("--seed", type=int, default=1)
    global ARGS
    ARGS = args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="load-only-"))
    flags = {"duckdb": str(workdir / "load.duckdb"), "pipelines_dir": str(workdir / "pipelines")}
    for name in ("memory_budget", "duckdb_memory_limit"):
        if getattr(args, name):
            flags[name] = getattr(args, name)
    options = RunOptions.resolve(flags)
    destination = make_destination(options)
    credentials = destination.config_params["credentials"]
    for setting in args.duckdb_setting:
        key, _, value = setting.partition("=")
        credentials.global_config = {**(credentials.global_config or {}), key: value}
    settings = dict(credentials.global_config or {})
    print(f"DuckDB settings: {settings or 'DuckDB defaults'}", flush=True)
    pipeline = dlt.pipeline(
        "load_only", destination=destination, dataset_name="d", pipelines_dir=flags["pipelines_dir"]
    )
    sampler = Sampler()
    instrument_pools(sampler)
    spent: dict[str, float] = {}
    if args.trace_sql:
        trace_sql(spent)
    rows = args.tasks * args.followers
    for label in ("first load", "re-load")[: 1 if args.once else 2]:
        sampler.samples.clear()
        with sampler.running():
            seconds = load_all(pipeline, sampler, args)
        top = peaks(sampler.samples)
        print(f"== {label}: {rows:,} rows in parts of {args.rows_per_part or rows:,}")
        for step, figures in top.items():
            if step in seconds:
                print(
                    f"  {step:18} {seconds[step]:6.2f} s  peak RSS {figures['rss_mb']:4.0f} MB  "
                    f"DuckDB {figures['duckdb_mb']:4.0f} MB (spilled {figures['spilled_mb']:.0f})"
                )
        print(f"  normalize + load   {seconds['normalize'] + seconds['load']:6.2f} s", flush=True)
        for kind, spent_seconds in sorted(spent.items(), key=lambda item: -item[1]):
            print(f"    SQL {kind:34} {spent_seconds:6.2f} s")
        spent.clear()
    direct = merge_without_staging(pipeline, settings)
    print(f"== the last load merged again without dlt's staging tables: {direct:.2f} s")
    plain = plain_insert(workdir / "plain.duckdb", settings)
    print(f"== plain insert of the same {rows:,} rows (create table as from Arrow): {plain:.2f} s")
    return 0


ARGS: argparse.Namespace

if __name__ == "__main__":
    sys.exit(main())
