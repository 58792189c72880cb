"""Rows that are unique by construction stay unique, even when dlt loads part of a package twice.

Seen on Postgres under load: a run killed while dlt loads a package in parallel can leave a
copy into a staging table that the server completes and commits after the client is gone. dlt
does not know, and when the next run resumes the package it copies that file again; the merge
then inserts every row of it twice, because these tables declare no primary key for dlt to
deduplicate on (a merge key alone keeps the merge fast, see the source's resources.py).

So before a load's history is applied, the rows that load wrote are checked against their
natural key and any duplicate is collapsed to one row, in the same transaction. A check of one
load's rows; nothing to do on a clean load.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dlt.destinations.sql_client import SqlClientBase

from .relations import BASE_TABLE

# table → the columns that identify a row (``_dlt_id`` is derived from the natural key there)
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "task_followers": ("_dlt_id",),
    "task_followers__id_list": ("_dlt_id",),
    "tasklist_tasks": ("tasklist_guid", "task_guid"),
}
CHUNK = 200  # keys per statement


def _chunks(rows: Sequence[tuple[Any, ...]], size: int) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def collapse_duplicates(client: SqlClientBase[Any], relations: dict[str, str], load_id: str) -> int:
    """Collapse duplicate rows written by ``load_id``; how many extra rows were removed."""
    removed = 0
    for table, key in UNIQUE_KEYS.items():
        if relations.get(table) != BASE_TABLE:
            continue
        name = client.make_qualified_table_name(table)
        columns = ", ".join(client.escape_column_name(column) for column in key)
        duplicated = client.execute_sql(
            f"select {columns}, count(*) from {name} where _dlt_load_id = %s group by {columns} "
            "having count(*) > 1",
            load_id,
        )
        for chunk in _chunks([tuple(row[: len(key)]) for row in duplicated or ()], CHUNK):
            removed += _keep_one_of_each(client, name, key, chunk)
    return removed


def _keep_one_of_each(
    client: SqlClientBase[Any], name: str, key: tuple[str, ...], keys: Sequence[tuple[Any, ...]]
) -> int:
    """Replace the rows with these keys by one row per key."""
    match = " and ".join(f"{client.escape_column_name(column)} = %s" for column in key)
    where = " or ".join(f"({match})" for _ in keys)
    params = [value for row in keys for value in row]
    with client.execute_query(f"select * from {name} where {where}", *params) as cursor:
        columns = [description[0] for description in cursor.description]
        rows = cursor.fetchall()
    positions = [columns.index(column) for column in key]
    kept: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        kept.setdefault(tuple(row[p] for p in positions), tuple(row))
    client.execute_sql(f"delete from {name} where {where}", *params)
    insert = (
        f"insert into {name} ({', '.join(client.escape_column_name(c) for c in columns)}) "
        f"values ({', '.join(['%s'] * len(columns))})"
    )
    for row in kept.values():
        client.execute_sql(insert, *row)
    return len(rows) - len(kept)
