"""dlt's DuckDB destination, with a copy step that reads dlt's files whatever their path.

dlt copies each load file into DuckDB with ``read_parquet('<path>', union_by_name=true)``, the
path pasted into the SQL. Two shapes of path break that, and with it every later run, since the
package stays pending (issue 21, item 2):

- a ``key=value`` folder anywhere in the path (``--pipelines-dir /x/env=prod/pipes``): DuckDB
  takes ``env`` for a Hive partition column of the file and the insert fails on a column that
  the table does not have;
- a quote in the path (``/home/o'brien``): the SQL does not parse.

And a file that cannot be read at all (damaged on disk) fails terminally here, not as something
a retry could change.

Here the path is a parameter of the statement and Hive partitioning is off, so loading does not
depend on where dlt's working folder is. Everything else is dlt's own DuckDB destination
(its type and name stay ``duckdb``, so its config and state are the same).
"""

from __future__ import annotations

from dlt.common.destination.client import LoadJob, PreparedTableSchema
from dlt.common.storages.load_storage import ParsedLoadJobFileName
from dlt.destinations import duckdb as dlt_duckdb
from dlt.destinations.exceptions import DatabaseTerminalException, DatabaseTransientException
from dlt.destinations.impl.duckdb.duck import DuckDbClient, DuckDbCopyJob

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
