"""The ``tenant_key`` column in a dataset loaded before it existed: added once, before anything reads it.

Every table of rows carries ``tenant_key`` first in each key (``tables.COMMON_COLUMNS``), and so do
dlt's child tables of the source's tables (``tasks__collaborators``). dlt would
add the new column to an existing table itself, but as ``NOT NULL`` without a value (which fails
on a table with rows) or, were it nullable, leaving the old rows with a null key that no later
merge replaces: every re-fetched task would keep its old rows beside the new. So before the
first fetch and before the history reads the tables, each table of the registry that lacks the
column gets it with the value ``''`` (a custom app's own tenant, the only one an older version
loaded), in one transaction; where the post-load steps declared a primary key (Postgres), the
key is declared again with ``tenant_key`` first. dlt then finds the column there and adds nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
from dlt.destinations.sql_client import SqlClientBase

from .tables import ALL_TABLES, SOURCE_TABLES, TABLES, TENANT_KEY, Table

log = logging.getLogger("feishu_tasks")

LEGACY_TENANT = ""  # the tenant of rows loaded before the column existed


def tenant_condition(tenant_key: str | None, alias: str = "") -> str:
    """SQL that keeps one tenant's rows (``1 = 1`` for all); the key is a checked plain token."""
    if tenant_key is None:
        return "1 = 1"
    if "'" in tenant_key:  # check_tenant_key admits none; never build SQL from one anyway
        raise ValueError("a tenant key cannot hold a quote")
    return f"{alias}{TENANT_KEY.name} = '{tenant_key}'"


def add_tenant_key(client: SqlClientBase[Any]) -> list[str]:
    """Give ``tenant_key`` to every table of the dataset that should have it and lacks it: the
    registry's tables of rows and dlt's child tables of the source's (``tasks__collaborators``, which
    get it from their parent row from now on). Returns the tables changed."""
    where, args = _in_dataset(client)
    rows = client.execute_sql(
        f"select table_name from information_schema.tables where {where} and table_type = 'BASE TABLE'",
        *args,
    )
    present = {str(row[0]) for row in rows or ()}
    registry = {table.name: table for table in ALL_TABLES if table.common_columns}
    children = {name for name in present if name not in TABLES and _child_of_source_table(name)}
    having = _tables_with_tenant_key(client)  # one query: this runs before every load
    lacking = sorted(name for name in present - having if name in registry or name in children)
    if not lacking:
        return []
    with client.begin_transaction():
        for name in lacking:
            _add_to(client, name, registry.get(name))
    log.warning("added tenant_key ('%s') to the rows of %s", LEGACY_TENANT, ", ".join(lacking))
    return lacking


def _child_of_source_table(name: str) -> bool:
    """A dlt child table of a source table: ``<table>__<list>`` (and deeper)."""
    return any(name.startswith(f"{table.name}__") for table in SOURCE_TABLES)


def _add_to(client: SqlClientBase[Any], table_name: str, table: Table | None) -> None:
    """The column, with the old rows' tenant; on Postgres the registry's keys declared with it."""
    name = client.make_qualified_table_name(table_name)
    column = client.escape_column_name(TENANT_KEY.name)
    client.execute_sql(
        f"alter table {name} add column {column} {TENANT_KEY.sql_type} default '{LEGACY_TENANT}'"
    )
    if table is None or isinstance(client, DuckDbSqlClient):
        return  # a dlt child table (dlt declares it nullable); DuckDB: no keys (feishu_followers.relations)
    client.execute_sql(f"alter table {name} alter column {column} set not null")
    constraint = _primary_key_constraint(client, table.name)
    if constraint is not None:
        keys = ", ".join(client.escape_column_name(key) for key in table.primary_keys)
        client.execute_sql(f"alter table {name} drop constraint {client.escape_column_name(constraint)}")
        client.execute_sql(f"alter table {name} add primary key ({keys})")


def _tables_with_tenant_key(client: SqlClientBase[Any]) -> set[str]:
    where, args = _in_dataset(client)
    rows = client.execute_sql(
        f"select table_name from information_schema.columns where {where} and column_name = %s",
        *args,
        TENANT_KEY.name,
    )
    return {str(row[0]) for row in rows or ()}


def _primary_key_constraint(client: SqlClientBase[Any], table: str) -> str | None:
    where, args = _in_dataset(client)
    rows = client.execute_sql(
        f"select constraint_name from information_schema.table_constraints where {where} "
        "and table_name = %s and constraint_type = 'PRIMARY KEY'",
        *args,
        table,
    )
    return str(rows[0][0]) if rows else None


def _in_dataset(client: SqlClientBase[Any]) -> tuple[str, list[str]]:
    """The information_schema condition for the client's dataset (as ``feishu_followers.relations``)."""
    catalog = client.catalog_name(quote=False)
    schema = client.make_qualified_table_name_path(None, quote=False)[-1]
    if catalog is None:
        return "table_schema = %s", [schema]
    return "table_schema = %s and table_catalog = %s", [schema, catalog]
