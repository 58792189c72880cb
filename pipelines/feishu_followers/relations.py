"""What the destination dataset holds, read through dlt's SQL client on any SQL destination.

The post-load steps (history, views) look before they write: a table not loaded yet is
replaced by an empty relation, and nothing is created before dlt has created the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
from dlt.destinations.sql_client import SqlClientBase

from feishu_tasks.tables import Table

BASE_TABLE = "BASE TABLE"
VIEW = "VIEW"


def dataset_relations(client: SqlClientBase[Any]) -> dict[str, str]:
    """Name → ``BASE TABLE`` or ``VIEW`` of every relation in the client's dataset."""
    where, args = _in_dataset(client)
    rows = client.execute_sql(
        f"select table_name, table_type from information_schema.tables where {where}", *args
    )
    return {str(name): str(kind) for name, kind in rows or ()}


def table_columns(client: SqlClientBase[Any], table: str) -> set[str]:
    """Column names of one table of the dataset (empty when it does not exist)."""
    where, args = _in_dataset(client)
    rows = client.execute_sql(
        f"select column_name from information_schema.columns where {where} and table_name = %s", *args, table
    )
    return {str(row[0]) for row in rows or ()}


def _in_dataset(client: SqlClientBase[Any]) -> tuple[str, list[str]]:
    """The information_schema condition for the client's dataset.

    Scoped to the client's catalog where it has one (DuckDB's information_schema lists every
    attached database; MotherDuck names its database), as dlt's own schema queries are.
    """
    catalog = client.catalog_name(quote=False)
    schema = client.make_qualified_table_name_path(None, quote=False)[-1]
    if catalog is None:
        return "table_schema = %s", [schema]
    return "table_schema = %s and table_catalog = %s", [schema, catalog]


def empty_relation(table: Table) -> str:
    """A subquery with the table's columns and no rows, standing in for a table not loaded yet."""
    columns = ", ".join(f"cast(null as {column.sql_type}) as {column.name}" for column in table.columns)
    return f"(select {columns} where 1 = 0)"


def declares_primary_keys(client: SqlClientBase[Any]) -> bool:
    """Whether the tables the post-load steps create declare their primary keys here.

    Not on DuckDB (nor MotherDuck, its client): a DuckDB primary key is an ART index that lives
    in memory and never spills, so it grows with the table until ``memory_limit`` refuses it. A
    1.1M-row history failed its insert at 256MB that way (issue 19), and then every later run
    too; without the index the same insert fits in 32MB. The keys hold by construction (each
    load is applied once, recorded in the same transaction); Postgres keeps them as B-trees on
    disk, which also serve the history's lookups by task.
    """
    return not isinstance(client, DuckDbSqlClient)


def create_own_table(client: SqlClientBase[Any], table: Table, relations: dict[str, str]) -> None:
    """Create ``table`` if missing, in the client's dialect (see ``declares_primary_keys``).

    On DuckDB a table made by an earlier version with its primary key is rebuilt without it,
    once, in a transaction of its own: rows, column types and NOT NULLs unchanged.
    """
    name = client.make_qualified_table_name(table.name)
    keyed = declares_primary_keys(client)
    if keyed or relations.get(table.name) != BASE_TABLE or not _has_primary_key(client, table.name):
        client.execute_sql(table.create_sql(name, primary_key=keyed))
        return
    rebuilt = client.make_qualified_table_name(f"{table.name}__rebuilt")
    columns = ", ".join(column.name for column in table.columns)
    with client.begin_transaction():
        client.execute_sql(f"drop table if exists {rebuilt}")
        client.execute_sql(table.create_sql(rebuilt, primary_key=False))
        client.execute_sql(f"insert into {rebuilt} ({columns}) select {columns} from {name}")
        client.execute_sql(f"drop table {name}")
        client.execute_sql(f"alter table {rebuilt} rename to {client.escape_column_name(table.name)}")


def _has_primary_key(client: SqlClientBase[Any], table: str) -> bool:
    where, args = _in_dataset(client)
    rows = client.execute_sql(
        f"select count(*) from information_schema.table_constraints where {where} "
        "and table_name = %s and constraint_type = 'PRIMARY KEY'",
        *args,
        table,
    )
    return bool(rows and rows[0][0])


def quote(client: SqlClientBase[Any], identifier: str) -> str:
    """An identifier quoted as the destination wants it."""
    return client.escape_column_name(identifier, quote=True, casefold=False)


class _RolledBack(Exception):
    """Raised inside a transaction so that dlt's ``begin_transaction`` rolls it back."""


@contextmanager
def rolled_back(client: SqlClientBase[Any]) -> Iterator[SqlClientBase[Any]]:
    """A transaction that is always rolled back: for probes and for queries that must change nothing."""
    try:
        with client.begin_transaction():
            yield client
            raise _RolledBack
    except _RolledBack:
        pass
