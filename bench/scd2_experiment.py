"""Does dlt's ``scd2`` merge strategy reproduce our follow history? A replay of the history cases.

Each case is a few runs of follower snapshots (what each task's fetch saw, and when). Every run
is loaded by one ``pipeline.run`` into five tables, then ``apply_history`` runs as after any load:

- ``task_followers`` and ``task_fetch_status`` with the source's hints (delete-insert on
  ``task_id``, a ``_tombstone`` row for a task whose followers are all gone), from which
  ``feishu_followers.history.apply_history`` derives ``task_follower_history``: **ours**;
- ``follows_scd2``: dlt's ``scd2`` with ``merge_key="task_id"`` and ``boundary_timestamp`` = the
  run's first observation time, one row per current follow of each task fetched ok: **scd2**;
- ``follows_scd2_tombstone``: the same plus our ``_tombstone`` row (``hard_delete`` hint) for each
  task fetched ok with no followers, as ``task_followers`` has it: **scd2+tomb**;
- ``follows_scd2_scoped``: the same tombstones, kept out of the table by ``source_filter`` while
  ``destination_scope`` (instead of the merge key) still lets them retire their task's rows: the
  most dlt 1.31's options allow, **scd2+scope**.

The scd2 tables use the follow's identity (task, follower) as row version, as the source's
``_dlt_id`` is, so a change in another column (``member_type``) does not split an interval.
The intervals are compared with each other and with the README's rules replayed in Python
(**spec**). Nothing is timed; the output says, per case and destination, exact or what differs.

    python bench/scd2_experiment.py                       # DuckDB, and Postgres when its binaries exist
    python bench/scd2_experiment.py --destination duckdb
    python bench/scd2_experiment.py --postgres-url postgresql://user:pw@127.0.0.1:5432/db

Postgres: without ``--postgres-url`` a throwaway server is started with the tests' helper
(``tests/pg_server.py``; binaries from ``PG_BIN`` or ``/usr/lib/postgresql/*/bin``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import pwd
import shutil
import socket
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.pg_server

import dlt  # noqa: E402
import pyarrow as pa  # noqa: E402
from dlt.sources import DltResource  # noqa: E402

from feishu_followers.history import apply_history  # noqa: E402

OK = "ok"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the first run; run k starts k hours later
USER_ID_TYPE = "open_id"

# The source's hints for its two tables that the history reads (sources/feishu_tasks/resources.py).
DELETE_INSERT: Any = {"disposition": "merge", "strategy": "delete-insert"}
TOMBSTONE_HINT: Any = {"_tombstone": {"data_type": "bool", "hard_delete": True}}
# scd2's validity columns named as ours, so that the tables read alike.
SCD2_COLUMNS = ["valid_from", "valid_to"]
# scd2+scope: tombstones are loaded to staging but never inserted; their task is in scope.
SCOPE_SOURCE_FILTER = "_tombstone = false"
SCOPE_DESTINATION = "task_id IN (SELECT task_id FROM {staging_table})"

# The columns of the source's rows that the history reads (sources/feishu_tasks/rows.py has them all).
FOLLOWER_FIELDS = [
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("follower_id", pa.string(), nullable=False),
    pa.field("user_id_type", pa.string(), nullable=False),
    pa.field("_dlt_id", pa.string(), nullable=False),
]
TOMBSTONE_FIELD = pa.field("_tombstone", pa.bool_(), nullable=False)
STATUS_FIELDS = [
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("user_id_type", pa.string(), nullable=False),
    pa.field("fetched_at", pa.timestamp("us", tz="UTC"), nullable=False),
]
LOAD_ID_FIELD = pa.field("_dlt_load_id", pa.string(), nullable=False)


@dataclass(frozen=True)
class Seen:
    """One task's fetch in a run: its outcome, its followers when ok, minutes after the run's start."""

    task: str
    followers: tuple[str, ...] = ()
    status: str = OK
    minutes: int = 0

    def fetched_at(self, run: Run) -> datetime:
        return run.started + timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class Run:
    """One run, loaded as one dlt load; ``twice``: its rows reach the tables twice (a resumed package)."""

    hour: int
    seen: tuple[Seen, ...]
    twice: bool = False

    @property
    def started(self) -> datetime:
        return T0 + timedelta(hours=self.hour)


@dataclass(frozen=True)
class Case:
    name: str
    runs: tuple[Run, ...]


def _run(hour: int, *seen: Seen, twice: bool = False) -> Run:
    return Run(hour, seen, twice)


CASES = (
    Case("follow added", (_run(0, Seen("T1", ("a", "b"))), _run(1, Seen("T1", ("a", "b", "c"))))),
    Case("follow removed", (_run(0, Seen("T1", ("a", "b"))), _run(1, Seen("T1", ("a",))))),
    Case("all followers removed", (_run(0, Seen("T1", ("a", "b"))), _run(1, Seen("T1", ())))),
    Case(
        "task gone invalid / forbidden",
        (
            _run(0, Seen("T1", ("a", "b")), Seen("T2", ("c",))),
            _run(1, Seen("T1", status="invalid_task"), Seen("T2", status="no_permission")),
        ),
    ),
    Case(
        "failed fetch closes nothing",
        (
            _run(0, Seen("T1", ("a", "b"))),
            _run(1, Seen("T1", status="failed")),
            _run(2, Seen("T1", ("a",))),
        ),
    ),
    Case(
        "re-follow",
        (_run(0, Seen("T1", ("a", "b"))), _run(1, Seen("T1", ("a",))), _run(2, Seen("T1", ("a", "b")))),
    ),
    Case(
        "same run loaded twice",
        (
            _run(0, Seen("T1", ("a", "b")), Seen("T2", ())),
            _run(0, Seen("T1", ("a", "b")), Seen("T2", ())),
            _run(1, Seen("T1", ("a", "b")), Seen("T2", ())),
        ),
    ),
    Case(
        "two tasks, one failed",
        (
            _run(0, Seen("T1", ("a", "b")), Seen("T2", ("c", "d"))),
            _run(1, Seen("T1", ("a",)), Seen("T2", status="failed")),
            _run(2, Seen("T1", ("a",)), Seen("T2", ("c",))),
        ),
    ),
    Case(
        "per-task observation times",
        (
            _run(0, Seen("T1", ("a",)), Seen("T2", ("b", "c"), minutes=20)),
            _run(1, Seen("T1", ("a", "d"), minutes=5), Seen("T2", ("b",), minutes=35)),
        ),
    ),
    Case(
        "rows written twice",
        (_run(0, Seen("T1", ("a", "b")), twice=True), _run(1, Seen("T1", ("a",)), twice=True)),
    ),
)

Interval = tuple[str, str, datetime, datetime | None]
TABLES = {
    "ours": "task_follower_history",
    "scd2": "follows_scd2",
    "scd2+tomb": "follows_scd2_tombstone",
    "scd2+scope": "follows_scd2_scoped",
}


def spec_history(runs: tuple[Run, ...]) -> Counter[Interval]:
    """The README's rules, replayed: a fetch that is not ok changes nothing; an ok fetch closes
    the open intervals of follows it no longer sees and opens one for each follow it sees anew,
    both at that task's own observation time."""
    opened: dict[tuple[str, str], datetime] = {}
    closed: Counter[Interval] = Counter()
    for run in runs:
        for seen in (s for s in run.seen if s.status == OK):
            now = seen.fetched_at(run)
            for task, follower in [key for key in opened if key[0] == seen.task]:
                if follower not in seen.followers:
                    closed[(task, follower, opened.pop((task, follower)), now)] += 1
            for follower in seen.followers:
                opened.setdefault((seen.task, follower), now)
    return closed + Counter((task, follower, start, None) for (task, follower), start in opened.items())


def row_id(*parts: str) -> str:
    """The source's stable ``_dlt_id`` for a natural key (sources/feishu_tasks/rows.py)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=10).digest()
    return base64.urlsafe_b64encode(digest).decode()[:14]


def follower_rows(run: Run, tombstones: bool) -> list[dict[str, Any]]:
    """One row per follow of each task fetched ok; with ``tombstones``, one for each empty task."""
    rows = []
    for seen in (s for s in run.seen if s.status == OK):
        members = seen.followers or (("",) if tombstones else ())
        for follower in members:
            rows.append(
                {
                    "task_id": seen.task,
                    "follower_id": follower,
                    "user_id_type": USER_ID_TYPE,
                    "_dlt_id": row_id(seen.task, follower),
                    "_tombstone": follower == "",
                }
            )
    return rows * 2 if run.twice else rows


def status_rows(run: Run) -> list[dict[str, Any]]:
    return [
        {"task_id": s.task, "status": s.status, "user_id_type": USER_ID_TYPE, "fetched_at": s.fetched_at(run)}
        for s in run.seen
    ]


def arrow(rows: list[dict[str, Any]], fields: list[pa.Field], load_id: bool = False) -> pa.Table:
    """Rows as an Arrow table of these columns (typed even when empty), as the source yields them.

    With ``load_id``, ``_dlt_load_id`` too, as the source adds it: the history step reads it.
    """
    if load_id:
        current = dlt.current.load_package_state()["load_id"]
        rows, fields = [{**row, "_dlt_load_id": current} for row in rows], [*fields, LOAD_ID_FIELD]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def scd2_disposition(run: Run, scoped: bool) -> Any:
    disposition: dict[str, Any] = {
        "disposition": "merge",
        "strategy": "scd2",
        "validity_column_names": SCD2_COLUMNS,
        "boundary_timestamp": min(s.fetched_at(run) for s in run.seen),  # one time per load
    }
    if scoped:
        disposition.update(source_filter=SCOPE_SOURCE_FILTER, destination_scope=SCOPE_DESTINATION)
    return disposition


def resources(run: Run) -> list[DltResource]:
    """The five tables of one run."""

    @dlt.resource(
        name="task_followers", write_disposition=DELETE_INSERT, merge_key="task_id", columns=TOMBSTONE_HINT
    )
    def task_followers() -> Iterator[pa.Table]:
        yield arrow(follower_rows(run, tombstones=True), [*FOLLOWER_FIELDS, TOMBSTONE_FIELD], load_id=True)

    @dlt.resource(name="task_fetch_status", write_disposition=DELETE_INSERT, primary_key="task_id")
    def task_fetch_status() -> Iterator[pa.Table]:
        yield arrow(status_rows(run), STATUS_FIELDS, load_id=True)

    @dlt.resource(name="follows_scd2", write_disposition=scd2_disposition(run, False), merge_key="task_id")
    def follows_scd2() -> Iterator[pa.Table]:
        yield arrow(follower_rows(run, tombstones=False), FOLLOWER_FIELDS)

    @dlt.resource(
        name="follows_scd2_tombstone",
        write_disposition=scd2_disposition(run, False),
        merge_key="task_id",
        columns=TOMBSTONE_HINT,
    )
    def follows_scd2_tombstone() -> Iterator[pa.Table]:
        yield arrow(follower_rows(run, tombstones=True), [*FOLLOWER_FIELDS, TOMBSTONE_FIELD])

    # no merge_key: destination_scope replaces it (dlt warns that it ignores one)
    @dlt.resource(name="follows_scd2_scoped", write_disposition=scd2_disposition(run, True))
    def follows_scd2_scoped() -> Iterator[pa.Table]:
        yield arrow(follower_rows(run, tombstones=True), [*FOLLOWER_FIELDS, TOMBSTONE_FIELD])

    return [
        task_followers(),
        task_fetch_status(),
        follows_scd2(),
        follows_scd2_tombstone(),
        follows_scd2_scoped(),
    ]


def intervals(pipeline: dlt.Pipeline, table: str) -> Counter[Interval]:
    """A table's intervals, times in UTC (DuckDB answers in the session's time zone)."""

    with pipeline.sql_client() as client:
        name = client.make_qualified_table_name(table)
        rows = client.execute_sql(f"select task_id, follower_id, valid_from, valid_to from {name}")
    return Counter(
        (str(task), str(follower), start.astimezone(UTC), end.astimezone(UTC) if end else None)
        for task, follower, start, end in rows or ()
    )


def replay(case: Case, destination: Any, workdir: Path) -> dict[str, Counter[Interval]]:
    """Load the case's runs through one pipeline; each variant's intervals at the end."""
    name = "scd2_" + "_".join("".join(c if c.isalnum() else " " for c in case.name).split())
    pipeline = dlt.pipeline(name, destination=destination, dataset_name=name, pipelines_dir=str(workdir))
    for run in case.runs:
        pipeline.run(resources(run))
        apply_history(pipeline)
    return {variant: intervals(pipeline, table) for variant, table in TABLES.items()}


def describe(interval: Interval) -> str:
    task, follower, start, end = interval
    return f"{task}/{follower or '(tombstone)'} [{start:%H:%M}, {f'{end:%H:%M}' if end else 'open'})"


@dataclass(frozen=True)
class Comparison:
    """A candidate's intervals against a reference's: those it lacks and those it adds."""

    reference: str
    candidate: str
    missing: list[Interval]
    extra: list[Interval]

    @classmethod
    def of(cls, names: tuple[str, str], got: dict[str, Counter[Interval]]) -> Comparison:
        reference, candidate = got[names[0]], got[names[1]]
        missing = sorted((reference - candidate).elements(), key=str)
        extra = sorted((candidate - reference).elements(), key=str)
        return cls(names[0], names[1], missing, extra)

    @property
    def cell(self) -> str:
        return f"-{len(self.missing)} +{len(self.extra)}" if self.missing or self.extra else "exact"

    def lines(self, case: str) -> list[str]:
        """One line per interval that differs."""
        prefix = f"  {case}, {self.candidate} vs {self.reference}: only"
        return [f"{prefix} {self.reference}: {describe(i)}" for i in self.missing] + [
            f"{prefix} {self.candidate}: {describe(i)}" for i in self.extra
        ]


# (reference, candidate): ours against the rules, then each scd2 variant against ours
COMPARISONS = (("spec", "ours"), ("ours", "scd2"), ("ours", "scd2+tomb"), ("ours", "scd2+scope"))


def row(first: str, cells: list[str]) -> str:
    return (f"  {first:<34}" + "".join(f"{cell:<20}" for cell in cells)).rstrip()


def report(destination_name: str, destination: Any, workdir: Path) -> bool:
    """Replay every case on one destination; print a table and the differences; True if all exact."""
    print(f"\n{destination_name}")
    print(row("case", [f"{candidate} vs {reference}" for reference, candidate in COMPARISONS]))
    details: list[str] = []
    for number, case in enumerate(CASES, 1):
        got = {"spec": spec_history(case.runs), **replay(case, destination, workdir)}
        comparisons = [Comparison.of(names, got) for names in COMPARISONS]
        print(row(f"{number}. {case.name}", [comparison.cell for comparison in comparisons]))
        details += [line for comparison in comparisons for line in comparison.lines(f"{number}. {case.name}")]
    print("  (-N: intervals of the reference that it lacks; +N: intervals that the reference does not have)")
    print("\n".join(details) if details else "  every case exact")
    return not details


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """A PostgreSQL server of the tests' kind (tests/pg_server.py), or None without binaries."""
    from tests.pg_server import PostgresServer, find_server_bin

    bindir = find_server_bin()
    if bindir is None:
        yield None
        return
    user = "nobody" if os.geteuid() == 0 else None  # initdb refuses root
    root = Path(tempfile.mkdtemp(prefix="scd2-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bindir, root, _free_port(), user)
    try:
        server.init()
        server.start()
        yield server.new_database()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--destination", choices=("duckdb", "postgres", "both"), default="both")
    parser.add_argument("--postgres-url", help="an existing database instead of a throwaway server")
    args = parser.parse_args()
    print(f"dlt {dlt.__version__}; times are HH:MM UTC on {T0:%Y-%m-%d}; run k starts at {T0:%H:%M} + k h")
    workdir = Path(tempfile.mkdtemp(prefix="scd2-experiment-"))
    exact = True
    try:
        if args.destination in ("duckdb", "both"):
            duckdb = dlt.destinations.duckdb(str(workdir / "scd2.duckdb"))
            exact &= report("duckdb", duckdb, workdir / "duckdb")
        if args.destination in ("postgres", "both"):
            exact &= run_postgres(args.postgres_url, workdir / "postgres")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nscd2 reproduces every case exactly" if exact else "\nnot every case is exact (see above)")


def run_postgres(url: str | None, workdir: Path) -> bool:
    if url:
        return report("postgres", dlt.destinations.postgres(url), workdir)
    with throwaway_postgres() as started:
        if started is None:
            print("\npostgres: skipped, no server binaries (set PG_BIN or install postgresql)")
            return True
        return report("postgres", dlt.destinations.postgres(started), workdir)


if __name__ == "__main__":
    main()
