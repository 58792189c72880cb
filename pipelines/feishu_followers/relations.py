"""What the destination dataset holds, read through dlt's SQL client on any SQL destination.

The post-load steps (history, views) look before they write: a table not loaded yet is
replaced by an empty relation, and nothing is created before dlt has created the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
