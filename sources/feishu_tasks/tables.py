"""Every table the connector writes, declared once: name, columns with types, keys, meaning.

Everything else is derived from here: the dlt resources and their column hints (``resources``),
the Arrow schemas of the rows (``rows``), the tables the follow history creates and the views
read (``feishu_followers.history`` / ``views``), the tests' list of tables, and the table
reference in ``docs/tables.md`` (``python tools/write_table_reference.py`` writes it).

Three kinds of table:

- ``SOURCE_TABLES``: loaded by dlt from the source's resources, one resource each;
- ``DERIVED_TABLES``: derived after each load from what it changed (``after_load``);
- ``BOOKKEEPING_TABLES``: what the post-load steps record about themselves.

``COMMON_COLUMNS`` are columns every table of rows carries (source, derived, and the bookkeeping
of the loads applied), first in each table and first in each key: ``tenant_key``, so one dataset
holds the rows of a store app's tenants side by side. dlt's child tables of a source table
(``tasks__collaborators``) get them from their parent row (``resources.propagate_common_columns``).
Only ``_feishu_views`` has none: it records the views of the dataset, which every tenant shares.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

DataType = Literal["text", "bigint", "bool", "timestamp"]
Kind = Literal["source", "derived", "bookkeeping", "dlt"]

# How each type is spelled in the SQL that DuckDB, MotherDuck and Postgres share (history, views).
SQL_TYPES: dict[str, str] = {
    "text": "varchar",
    "bigint": "bigint",
    "bool": "boolean",
    "timestamp": "timestamptz",
}

TOMBSTONE = "_tombstone"


@dataclass(frozen=True)
class Column:
    """One column: its dlt data type, whether it may be null, and what it holds."""

    name: str
    type: DataType
    meaning: str
    nullable: bool = True

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class Table:
    """One table of the dataset.

    ``merge_key``: a load replaces every row whose merge key it carries (dlt's ``delete-insert``):
    a fetch replaces a task's follower set and leaves other tasks alone. ``primary_key``: one row
    per key, the latest wins. ``tombstones``: the table takes ``_tombstone`` rows, which delete the
    rows of their merge key and are never stored (a task whose followers are all gone).
    ``open``: dlt adds a column for whatever else the items carry (the task objects).
    ``row_key``: what identifies a row where no primary key says it (checked after each load).
    ``shared``: a row describes the dataset, whichever tenant: no ``COMMON_COLUMNS``.
    """

    name: str
    meaning: str
    kind: Kind
    own_columns: tuple[Column, ...]
    merge_key: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    tombstones: bool = False
    open: bool = False
    row_key: tuple[str, ...] = ()
    shared: bool = False
    extra: tuple[str, ...] = field(default=(), compare=False)  # notes for the reference

    @property
    def common_columns(self) -> tuple[Column, ...]:
        """``COMMON_COLUMNS`` for a table of ours that is not ``shared``; none for dlt's own."""
        return () if self.kind == "dlt" or self.shared else COMMON_COLUMNS

    @property
    def columns(self) -> tuple[Column, ...]:
        """The table's columns, common ones first (the tombstone is not stored: not a column)."""
        return (*self.common_columns, *self.own_columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    @property
    def merge_keys(self) -> tuple[str, ...]:
        return self._keyed(self.merge_key)

    @property
    def primary_keys(self) -> tuple[str, ...]:
        return self._keyed(self.primary_key)

    @property
    def row_keys(self) -> tuple[str, ...]:
        return self._keyed(self.row_key)

    def _keyed(self, columns: tuple[str, ...]) -> tuple[str, ...]:
        return (*(column.name for column in self.common_columns), *columns) if columns else ()

    def dlt_hints(self) -> dict[str, Any]:
        """The arguments of ``dlt.resource`` / ``dlt.transformer`` that declare this table."""
        hints: dict[str, Any] = {
            "name": self.name,
            "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
            "columns": self.dlt_columns(),
        }
        if self.merge_keys:
            hints["merge_key"] = list(self.merge_keys)
        if self.primary_keys:
            hints["primary_key"] = list(self.primary_keys)
        # Parquet, not DuckDB's preferred INSERT statements: DuckDB parses a 16 MB INSERT into
        # hundreds of MB (10,000 listed tasks: 1,035 MB peak RSS in the load step; see
        # BENCHMARKS.md). A destination without parquet (Postgres) keeps its own format.
        hints["file_format"] = "parquet"
        return hints

    def dlt_columns(self) -> dict[str, dict[str, Any]]:
        """dlt column hints: each column's type and nullability, and the tombstone's hard delete."""
        columns: dict[str, dict[str, Any]] = {
            column.name: {"data_type": column.type, "nullable": column.nullable}
            | ({"timezone": True} if column.type == "timestamp" else {})
            for column in self.columns
        }
        if self.tombstones:
            columns[TOMBSTONE] = {"data_type": "bool", "hard_delete": True}
        return columns

    def create_sql(self, qualified_name: str, primary_key: bool = True) -> str:
        """``create table if not exists`` in the SQL that DuckDB and Postgres share.

        ``primary_key=False`` leaves the key undeclared (DuckDB: see ``feishu_followers.relations``).
        """
        lines = [
            f"{column.name} {column.sql_type}{'' if column.nullable else ' not null'}"
            for column in self.columns
        ]
        if self.primary_keys and primary_key:
            lines.append(f"primary key ({', '.join(self.primary_keys)})")
        return f"create table if not exists {qualified_name} ({', '.join(lines)})"


# A column added here is added to every data table and to the front of every key.
TENANT_KEY = Column(
    "tenant_key",
    "text",
    "the tenant the row belongs to: a store app's tenant key (`run --tenant`); for a custom app its "
    "tenant's key where given, else `''` (also the rows loaded before the column existed)",
    nullable=False,
)
COMMON_COLUMNS: tuple[Column, ...] = (TENANT_KEY,)


def _text(name: str, meaning: str, nullable: bool = True) -> Column:
    return Column(name, "text", meaning, nullable)


def _time(name: str, meaning: str, nullable: bool = True) -> Column:
    return Column(name, "timestamp", meaning, nullable)


def _count(name: str, meaning: str, nullable: bool = True) -> Column:
    return Column(name, "bigint", meaning, nullable)


def _flag(name: str, meaning: str) -> Column:
    return Column(name, "bool", meaning)


DLT_ID = _text("_dlt_id", "dlt's row id: stable per natural key (a hash of it)", nullable=False)
TASK_ID = _text("task_id", "the task's id (UUID; the v2 guid)", nullable=False)
FOLLOWER_ID = _text(
    "follower_id",
    "the follower's id, of type `user_id_type` (an app's id, `cli_…`, for an app follower)",
    False,
)
USER_ID_TYPE = _text("user_id_type", "`open_id`, `union_id` or `user_id`", nullable=False)
ERROR_COLUMNS = (
    _count("error_code", "the API's business code when it failed"),
    _text("error_msg", "what was wrong"),
    _text("log_id", "the request's `X-Tt-Logid`, for Feishu support"),
)

TASK_FOLLOWERS = Table(
    "task_followers",
    "one row per (task, follower) currently following; each fetch replaces its task's follower set",
    "source",
    (
        TASK_ID,
        FOLLOWER_ID,
        USER_ID_TYPE,
        _text("member_type", "`user` or `app` when read through v2; null through v1"),
        DLT_ID,
    ),
    merge_key=("task_id",),
    tombstones=True,
    row_key=("_dlt_id",),  # a hash of (task_id, follower_id)
    extra=(
        "Unique by construction (a follower listed twice is one follow). No primary key is declared: "
        "with one, dlt's merge deletes on `primary key OR merge key`, which DuckDB cannot hash-join.",
    ),
)
TASK_FOLLOWERS_ID_LIST = Table(
    "task_followers__id_list",
    "the API's `id_list` of a follower, when an item carries one (rare)",
    "source",
    (
        TASK_ID,
        FOLLOWER_ID,
        _text("value", "one id of the list"),
        _count("_dlt_list_idx", "its position in the list", nullable=False),
        _text("_dlt_parent_id", "the parent row's `_dlt_id` in `task_followers`", nullable=False),
        DLT_ID,
    ),
    merge_key=("task_id",),
    tombstones=True,
    row_key=("_dlt_id",),  # a hash of (task_id, follower_id, _dlt_list_idx)
)
TASK_FETCH_STATUS = Table(
    "task_fetch_status",
    "one row per task ever asked for: its latest outcome",
    "source",
    (
        _text("task_id", "as given (malformed ids too, up to 200 characters)", nullable=False),
        _text(
            "status",
            "`ok`, `invalid_task` (malformed id, 1470602, v2 1470404), `no_permission` (1470432, "
            "v2 1470403), `failed` (retries exhausted, a malformed answer, a bound reached), `deleted` "
            "(an event said so and the API no longer knows the task: its followers are gone)",
            nullable=False,
        ),
        _count("follower_count", "followers found (null unless ok)"),
        _count("pages", "requests that read them", nullable=False),
        *ERROR_COLUMNS,
        USER_ID_TYPE,
        _text("api", "which API answered: `v1` or `v2` (null: no request was sent)"),
        _time("fetched_at", "when this outcome was fetched", nullable=False),
        _time("last_ok_at", "the last successful fetch (kept when a later fetch fails)"),
        _time(
            "observed_at",
            "when the follower set read is known to hold: the time of the event that explains the "
            "change (never before the previous observation), else `fetched_at`; null unless ok or deleted",
        ),
    ),
    primary_key=("task_id",),
)
TASKS = Table(
    "tasks",
    "the task objects of the v1 listing (`discover`), as the API sends them, nested objects flattened",
    "source",
    (
        _text("id", "the task's id", nullable=False),
        _text("summary", "the task's title"),
        _time("create_time", "from Unix-second strings"),
        _time("update_time", "from Unix-second strings"),
        _time("complete_time", "null when not completed"),
    ),
    primary_key=("id",),
    open=True,
    extra=(
        "Every other field of the task object becomes a column too (`due__time`, `origin__href__url`, ...); "
        "nesting past 8 levels is kept as JSON text, integers past 64 bits are null, and keys named like "
        "dlt's own columns are dropped.",
        "The `followers` array is not loaded (no `tasks__followers` table): the follows are "
        "`task_followers`; `collaborators` is the child table `tasks__collaborators`.",
    ),
)
TASKLISTS = Table(
    "tasklists",
    "the task lists the credentials can see (those asked for, or all)",
    "source",
    (
        _text("guid", "the list's guid", nullable=False),
        _text("name", "the list's name"),
        _text("creator_id", "who created it"),
        _text("owner_id", "who owns it"),
        _text("url", "the list in Feishu's app"),
        _time("created_at", "v2's Unix milliseconds as a timestamp"),
        _time("updated_at", "likewise"),
        _time("archived_at", "null when not archived"),
    ),
    primary_key=("guid",),
)
TASKLIST_TASKS = Table(
    "tasklist_tasks",
    "the tasks of each list read whole; replaced per list, so a task moved out of a list leaves it",
    "source",
    (
        _text("tasklist_guid", "the list", nullable=False),
        _text("task_guid", "the task", nullable=False),
        _text("summary", "the task's title"),
        _time("completed_at", "null when not completed"),
        _time("due_at", "the due time"),
        _flag("due_is_all_day", "whether the due time is a whole day"),
        _time("start_at", "the start time"),
        _flag("start_is_all_day", "whether the start time is a whole day"),
        _count("subtask_count", "its subtasks"),
    ),
    merge_key=("tasklist_guid",),
    tombstones=True,
    row_key=("tasklist_guid", "task_guid"),
)
TASKLIST_FETCH_STATUS = Table(
    "tasklist_fetch_status",
    "one row per task list asked for: its latest outcome",
    "source",
    (
        _text("tasklist_guid", "the list", nullable=False),
        _text("status", "`ok`, `not_found`, `no_permission` or `failed`", nullable=False),
        _count("task_count", "tasks found (null unless ok)"),
        _count("pages", "requests that read them"),
        *ERROR_COLUMNS,
        _time("fetched_at", "when this outcome was fetched"),
        _time("last_ok_at", "the last successful read (kept when a later one fails)"),
    ),
    primary_key=("tasklist_guid",),
)

_KEY_BY_CONSTRUCTION = (
    "On DuckDB the key is not declared (DuckDB would keep its index in memory, which does not "
    "spill): it holds by construction, each load being applied once."
)
TASK_FOLLOWER_HISTORY = Table(
    "task_follower_history",
    "when each follow started and stopped being observed; the open intervals are exactly `task_followers`",
    "derived",
    (
        TASK_ID,
        FOLLOWER_ID,
        USER_ID_TYPE,
        _time(
            "valid_from", "the observation time (`fetched_at`) of the run that first saw the follow", False
        ),
        _time("valid_to", "the observation time of the first run that saw it gone; null while current"),
    ),
    primary_key=("task_id", "follower_id", "user_id_type", "valid_from"),
    extra=(_KEY_BY_CONSTRUCTION,),
)
TASK_FIRST_SEEN = Table(
    "task_first_seen",
    "each task's first successful fetch: intervals that start then were already there when the "
    "connector first looked",
    "derived",
    (TASK_ID, _time("first_ok_at", "the first successful fetch", nullable=False)),
    primary_key=("task_id",),
    extra=(_KEY_BY_CONSTRUCTION,),
)
HISTORY_LOADS = Table(
    "_feishu_history_loads",
    "the dlt loads whose changes the history has applied, each once",
    "bookkeeping",
    (
        _text("load_id", "dlt's load id", nullable=False),
        _time("applied_at", "when it was applied", nullable=False),
    ),
    primary_key=("load_id",),
    extra=(
        "`tenant_key` is the tenant whose tasks the load fetched (each tenant loads through its own "
        "dlt pipeline); `''` for a load that fetched no task.",
    ),
)
VIEW_HASHES = Table(
    "_feishu_views",
    "the SQL each view was created with (its hash), so views are rebuilt only when it changes",
    "bookkeeping",
    (
        _text("view_name", "the view", nullable=False),
        _text("sql_sha256", "SHA-256 of its SQL", nullable=False),
    ),
    primary_key=("view_name",),
    shared=True,
    extra=(
        "No `tenant_key`: the views are the dataset's, shared by every tenant (each view that lists "
        "tasks or followers has a `tenant_key` column).",
    ),
)

# dlt's own record of loads: the columns the post-load steps read (dlt creates and owns it).
DLT_LOADS = Table(
    "_dlt_loads",
    "dlt's record of each load",
    "dlt",
    (
        _text("load_id", "the load", nullable=False),
        _text("schema_name", "the source's schema", nullable=False),
        _count("status", "0 once the load completed", nullable=False),
        _time("inserted_at", "when it completed", nullable=False),
    ),
)

SOURCE_TABLES: tuple[Table, ...] = (
    TASK_FOLLOWERS,
    TASK_FOLLOWERS_ID_LIST,
    TASK_FETCH_STATUS,
    TASKS,
    TASKLISTS,
    TASKLIST_TASKS,
    TASKLIST_FETCH_STATUS,
)
DERIVED_TABLES: tuple[Table, ...] = (TASK_FOLLOWER_HISTORY, TASK_FIRST_SEEN)
BOOKKEEPING_TABLES: tuple[Table, ...] = (HISTORY_LOADS, VIEW_HASHES)
ALL_TABLES: tuple[Table, ...] = (*SOURCE_TABLES, *DERIVED_TABLES, *BOOKKEEPING_TABLES)
TABLES: dict[str, Table] = {table.name: table for table in ALL_TABLES}


def table_list() -> str:
    """The source's tables as a bullet list (the source's docstring)."""
    return "\n".join(f"- ``{table.name}``: {table.meaning}" for table in SOURCE_TABLES)


def _reference_lines() -> Iterator[str]:
    yield "# Tables"
    yield ""
    yield "Generated from `sources/feishu_tasks/tables.py` by `python tools/write_table_reference.py`;"
    yield "do not edit. Every table also has dlt's `_dlt_load_id` (the load that wrote the row); the"
    yield "tables are in the dataset (default `feishu_tasks`), with dlt's own `_dlt_loads`,"
    yield "`_dlt_version` and `_dlt_pipeline_state`."
    yield ""
    yield "Every table but `_feishu_views` starts with `tenant_key`, first in every key: a store app's"
    yield "tenants share the dataset. dlt's child tables of a listed object (`tasks__collaborators`, any"
    yield "`<table>__<list>`) carry it too, copied from their parent row (dlt's normalizer propagation):"
    yield "`_dlt_parent_id` links a child row to its parent, and `tenant_key` filters it by tenant."
    titles = {
        "source": "Loaded by the source (one dlt resource each)",
        "derived": "Derived after each load (`after_load`)",
        "bookkeeping": "Bookkeeping of the post-load steps",
    }
    for kind, title in titles.items():
        yield ""
        yield f"## {title}"
        for table in ALL_TABLES:
            if table.kind == kind:
                yield from _table_reference(table)


def _table_reference(table: Table) -> Iterator[str]:
    yield ""
    yield f"### `{table.name}`"
    yield ""
    yield f"{table.meaning[0].upper()}{table.meaning[1:]}."
    keys = []
    if table.merge_keys:
        keys.append(f"replaced per `{', '.join(table.merge_keys)}` (merge key)")
    if table.primary_keys:
        keys.append(f"one row per `{', '.join(table.primary_keys)}` (primary key)")
    if table.tombstones:
        keys.append("an emptied key is deleted through a `_tombstone` row, never stored")
    if keys:
        yield f"Keys: {'; '.join(keys)}."
    yield from table.extra
    yield ""
    yield "| column | type | null | meaning |"
    yield "| --- | --- | --- | --- |"
    for column in table.columns:
        yield f"| `{column.name}` | {column.type} | {'yes' if column.nullable else 'no'} | {column.meaning} |"


def reference_markdown() -> str:
    """``docs/tables.md``: every table, its keys and its columns."""
    return "\n".join(_reference_lines()) + "\n"
