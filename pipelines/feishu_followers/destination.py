"""Where a run loads: the dlt destination from ``--destination`` or config, checked before any request.

``duckdb`` (the default) is the file ``--duckdb PATH``, built here. Any other name goes to dlt as
it is, and dlt resolves its credentials from its own config (``DESTINATION__POSTGRES__CREDENTIALS``,
``[destination.postgres.credentials]`` in ``.dlt/secrets.toml``), as for any dlt pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination import Destination
from dlt.common.destination.client import LoadJob, PreparedTableSchema
from dlt.common.destination.exceptions import DestinationException
from dlt.common.storages.load_storage import ParsedLoadJobFileName
from dlt.destinations import duckdb as dlt_duckdb
from dlt.destinations.exceptions import (
    DatabaseException,
    DatabaseTerminalException,
    DatabaseTransientException,
)
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.impl.duckdb.duck import DuckDbClient, DuckDbCopyJob
from dlt.destinations.sql_client import SqlClientBase

from feishu_tasks.errors import ConfigError, FatalError

from .options import RunOptions
from .relations import rolled_back

DEFAULT_DESTINATION = "duckdb"
# Where the post-load steps (history, task_first_seen, views) run: their SQL is written for the
# part of SQL that DuckDB and Postgres share, and tested on both; MotherDuck is DuckDB's dialect
# (untested: no machine here reaches it). Elsewhere the tables are loaded and these steps skipped.
DERIVED_RELATIONS_ON = ("duckdb", "motherduck", "postgres")


def checked_duckdb_file(options: RunOptions) -> str:
    """``--duckdb``, if it can name a database file (not a folder): checked before the run's lock."""
    path = Path(options.duckdb_path)
    if path.is_dir() or not path.name:
        raise ConfigError(f"--duckdb {path} is a folder; give a file path such as ./followers.duckdb")
    return options.duckdb_path


def make_destination(options: RunOptions) -> Destination[Any, Any]:
    """The dlt destination of ``options``; an unknown name stops the run before any request."""
    if options.destination == DEFAULT_DESTINATION:
        if Path(checked_duckdb_file(options)).stem == options.dataset:
            raise ConfigError(
                f"the DuckDB file {options.duckdb_path} is named like the dataset {options.dataset!r}: "
                "DuckDB then cannot tell the file from the schema; choose another file name (--duckdb) "
                "or dataset (--dataset)"
            )
        credentials = DuckDbCredentials(str(Path(options.duckdb_path).resolve()))
        # DuckDB's default is 80% of RAM (of the container's limit), which a merge of a big
        # load takes; bounded by the budget, every step spills to disk instead (budget.py).
        credentials.global_config = options.memory.duckdb_settings()
        return duckdb(credentials)  # dlt's, loading from any path (below)
    try:
        destination = Destination.from_reference(options.destination)
    except DestinationException:
        destination = None
    if destination is None:
        raise FatalError(
            f"unknown destination {options.destination!r}: use a dlt destination name such as "
            "duckdb, postgres, motherduck or filesystem"
        )
    return destination


def destination_kind(pipeline: dlt.Pipeline) -> str:
    """``postgres``, ``duckdb``, ... also for a named destination (``destination_type`` in config)."""
    return str(pipeline.destination.destination_type).rsplit(".", 1)[-1]


def builds_derived_relations(pipeline: dlt.Pipeline) -> bool:
    """Whether history and views are built on this destination (see DERIVED_RELATIONS_ON)."""
    return destination_kind(pipeline) in DERIVED_RELATIONS_ON


def skipped_steps_note(pipeline: dlt.Pipeline) -> str | None:
    """The one line a run prints when it loads tables but builds no history or views."""
    if builds_derived_relations(pipeline):
        return None
    return (
        f"note: the {destination_kind(pipeline)} destination gets the loaded tables only; "
        f"follow history and views are built on {', '.join(DERIVED_RELATIONS_ON)}"
    )


def describe(options: RunOptions) -> str:
    """Where the summary says the run loaded (credentials stay out of it)."""
    if options.destination == DEFAULT_DESTINATION:
        return options.duckdb_path
    return f"the {options.destination} destination"


def check_writable(pipeline: dlt.Pipeline, options: RunOptions) -> None:
    """Create (and roll back) a table in the dataset, so that an unreachable, read-only or busy
    destination stops the run before any API request rather than after the fetch.

    Only where the post-load steps run (SQL destinations we test); dlt reports the others at load.
    """
    if not builds_derived_relations(pipeline):
        return
    kind = destination_kind(pipeline)
    try:
        if options.destination == DEFAULT_DESTINATION:
            Path(options.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
        with pipeline.sql_client() as client, rolled_back(client):
            if not client.has_dataset():
                client.create_dataset()
            client.execute_sql(
                f"create table {client.make_qualified_table_name('_feishu_write_probe')} (x int)"
            )
    except ConfigFieldMissingException as exc:
        raise FatalError(
            f"missing configuration of the {kind} destination: {', '.join(exc.fields)} "
            f"(set DESTINATION__{kind.upper()}__CREDENTIALS or [destination.{kind}.credentials] "
            "in .dlt/secrets.toml)"
        ) from None
    except Exception as exc:  # chained: a caller can still tell a busy DuckDB file from the cause
        if not is_destination_error(exc):
            raise
        if options.destination == DEFAULT_DESTINATION:
            raise FatalError(
                f"cannot write the DuckDB file {options.duckdb_path}: {first_line(exc)}"
            ) from exc
        raise FatalError(f"cannot write to the {kind} destination: {first_line(exc)}") from exc


def query_task_ids(pipeline: dlt.Pipeline, options: RunOptions) -> list[str]:
    """First column of ``--task-ids-query`` run on the destination (e.g. a table another pipeline
    loaded), in a transaction that is rolled back: the query reads, it never changes anything."""
    sql = str(options.task_ids_query)
    if options.destination == DEFAULT_DESTINATION and not Path(options.duckdb_path).exists():
        raise FatalError(f"--task-ids-query runs on {options.duckdb_path}, which does not exist yet")
    try:
        with pipeline.sql_client() as client, rolled_back(client):
            rows = client.execute_sql(sql)
    except Exception as exc:
        if not is_destination_error(exc):
            raise
        raise FatalError(f"--task-ids-query failed: {first_line(exc)}") from exc
    return [str(row[0]) for row in rows or () if row and row[0] is not None]


def is_destination_error(exc: BaseException) -> bool:
    """An error of the destination or its driver (not a bug of ours), as dlt tells them apart."""
    return isinstance(exc, (OSError, DatabaseException, DestinationException)) or (
        isinstance(exc, Exception) and SqlClientBase.is_dbapi_exception(exc)
    )


def first_line(exc: BaseException) -> str:
    """The first line of what the driver said (dlt wraps it; its own text repeats the type)."""
    inner = getattr(exc, "dbapi_exception", None) or getattr(exc, "inner_exc", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__


# ------------------------------------------------------------------------------- DuckDB's copy job
# dlt's DuckDB destination, with a copy step that reads dlt's files whatever their path.
#
# dlt copies each load file into DuckDB with ``read_parquet('<path>', union_by_name=true)``, the
# path pasted into the SQL. Two shapes of path break that, and with it every later run, since the
# package stays pending (issue 21, item 2):
#
# - a ``key=value`` folder anywhere in the path (``--pipelines-dir /x/env=prod/pipes``): DuckDB
#   takes ``env`` for a Hive partition column of the file and the insert fails on a column that
#   the table does not have;
# - a quote in the path (``/home/o'brien``): the SQL does not parse.
#
# And a file that cannot be read at all (damaged on disk) fails terminally here, not as something
# a retry could change.
#
# Here the path is a parameter of the statement and Hive partitioning is off, so loading does not
# depend on where dlt's working folder is. Everything else is dlt's own DuckDB destination
# (its type and name stay ``duckdb``, so its config and state are the same).
DESTINATION_TYPE = "dlt.destinations.duckdb"


class PathSafeCopyJob(DuckDbCopyJob):
    """dlt's copy of one parquet file, with the path as a parameter and no Hive partitions."""

    def run(self) -> None:
        if ParsedLoadJobFileName.parse(self._file_path).file_format != "parquet":
            super().run()  # the source loads Arrow tables and rows as parquet; nothing else comes here
            return
        self._sql_client = self._job_client.sql_client
        table = self._sql_client.make_qualified_table_name(self.load_table_name)
        try:
            self._sql_client.execute_sql(
                f"INSERT INTO {table} BY NAME SELECT * FROM "
                "read_parquet(%s, union_by_name=true, hive_partitioning=false)",
                self._file_path,
            )
        except DatabaseTransientException as exc:
            # dlt retries DuckDB's "Invalid Input" as transient; naming this very file, it says the
            # file cannot be read (damaged, truncated), which no retry changes: the package is set
            # aside (run.set_aside_when_terminal) instead of failing every later run.
            if "Invalid Input Error" in str(exc) and self._file_path in str(exc):
                raise DatabaseTerminalException(exc) from exc
            raise


class PathSafeDuckDbClient(DuckDbClient):
    def create_load_job(
        self, table: PreparedTableSchema, file_path: str, load_id: str, restore: bool = False
    ) -> LoadJob:
        job = super().create_load_job(table, file_path, load_id, restore)
        return PathSafeCopyJob(file_path) if type(job) is DuckDbCopyJob else job


class duckdb(dlt_duckdb):  # noqa: N801  (dlt names a destination's factory after its type)
    """dlt's ``duckdb`` destination with ``PathSafeCopyJob``; the same type, name and config."""

    @property
    def client_class(self) -> type[DuckDbClient]:
        return PathSafeDuckDbClient

    @property
    def destination_type(self) -> str:
        return DESTINATION_TYPE


@contextmanager
def duckdb_file_held(options: RunOptions) -> Iterator[None]:
    """Keep the DuckDB file open for the block, so that dlt's many connections reuse one database.

    dlt opens and closes a connection for every query it makes (the state, the schema, the load,
    our status reads, the history): a micro-batch made ~15 of them, and each first open of a file
    reads its catalog and each last close checkpoints it, ~0.5–1 s of a batch at 100,000 tasks
    under load (py-spy). DuckDB shares one database among the connections of a process, so one
    connection held here makes the others cheap; closing it at the end releases the file (an
    analyst may query it between batches). Not DuckDB, or the file busy: the block runs as before.
    """
    import duckdb

    if options.destination != DEFAULT_DESTINATION:
        yield
        return
    try:
        held = duckdb.connect(str(Path(options.duckdb_path).resolve()))
    except duckdb.Error:  # another process holds it: the run waits for it as it always does
        yield
        return
    try:
        yield
    finally:
        held.close()
