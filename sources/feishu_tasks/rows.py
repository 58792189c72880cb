"""Fetch outcomes → rows of each destination table (Arrow tables where the rows are many).

The columns come from the registry (``tables``); the rows built here hold each table's own
columns, and ``resources`` adds the common ones and dlt's ``_dlt_load_id``. Arrow keeps dlt's
per-row Python normalizer out of the hot path; they are built by ``arrow_columns``, since
``pa.array`` would import pandas (+37–53 MB) for nothing. The follower tables carry dlt's ``_dlt_id``
(deterministic, so ``task_followers__id_list`` can link to its parent row) and a ``_tombstone``
column that dlt's merge uses to remove the rows of a task whose followers are all gone: rows
flagged true are deleted, never inserted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from . import arrow_columns
from .items import LIST_OK, TasklistOutcome, TaskOutcome
from .settings import FOLLOWER_SET_KNOWN, STATUS_OK
from .tables import TASK_FETCH_STATUS, TASK_FOLLOWERS, TASK_FOLLOWERS_ID_LIST, TOMBSTONE, Table

# The Arrow type of each of the registry's data types.
_ARROW_TYPES = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema of a table's own columns, from the registry (the tombstone last, if any)."""
    fields = [pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in table.own_columns]
    if table.tombstones:
        fields.append(pa.field(TOMBSTONE, pa.bool_(), nullable=False))
    return pa.schema(fields)


FOLLOWERS_SCHEMA = arrow_schema(TASK_FOLLOWERS)
ID_LIST_SCHEMA = arrow_schema(TASK_FOLLOWERS_ID_LIST)
STATUS_SCHEMA = arrow_schema(TASK_FETCH_STATUS)


def row_id(*parts: str) -> str:
    """A stable 14-character id (dlt's length) for a row with this natural key."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=10).digest()
    return base64.urlsafe_b64encode(digest).decode()[:14]


def followers_table(outcomes: Iterable[TaskOutcome], user_id_type: str) -> pa.Table:
    """Rows of ``task_followers`` for the successful tasks; a tombstone for each empty one."""
    task_ids: list[str] = []
    follower_ids: list[str] = []
    member_types: list[str | None] = []
    ids: list[str] = []
    tombstones: list[bool] = []
    for outcome in outcomes:
        if outcome.status not in FOLLOWER_SET_KNOWN:
            continue  # a failed task keeps the rows it had
        if not outcome.followers:
            task_ids.append(outcome.task_id)
            follower_ids.append("")
            member_types.append(None)
            ids.append(row_id(outcome.task_id, ""))
            tombstones.append(True)
        for follower in outcome.followers:
            task_ids.append(outcome.task_id)
            follower_ids.append(follower.id)
            member_types.append(follower.member_type)
            ids.append(row_id(outcome.task_id, follower.id))
            tombstones.append(False)
    columns: dict[str, list[Any]] = {
        "task_id": task_ids,
        "follower_id": follower_ids,
        "user_id_type": [user_id_type] * len(task_ids),
        "member_type": member_types,
        "_dlt_id": ids,
        TOMBSTONE: tombstones,
    }
    return arrow_columns.table(columns, FOLLOWERS_SCHEMA)


def id_list_table(outcomes: Iterable[TaskOutcome]) -> pa.Table:
    """Rows of ``task_followers__id_list``; a tombstone for each successful task without any.

    Every successful task must appear (as rows or a tombstone) so that an ``id_list`` that
    disappeared in Feishu disappears here too.
    """
    rows: dict[str, list[Any]] = {name: [] for name in ID_LIST_SCHEMA.names}

    def add(task_id: str, follower_id: str, value: str | None, idx: int, tombstone: bool) -> None:
        parent = row_id(task_id, follower_id)
        rows["task_id"].append(task_id)
        rows["follower_id"].append(follower_id)
        rows["value"].append(value)
        rows["_dlt_list_idx"].append(idx)
        rows["_dlt_parent_id"].append(parent)
        rows["_dlt_id"].append(row_id(parent, str(idx)))
        rows[TOMBSTONE].append(tombstone)

    for outcome in outcomes:
        if outcome.status not in FOLLOWER_SET_KNOWN:
            continue
        listed = False
        for follower in outcome.followers:
            for idx, value in enumerate(follower.id_list or ()):
                add(outcome.task_id, follower.id, value, idx, False)
                listed = True
        if not listed:
            add(outcome.task_id, "", None, -1, True)
    return arrow_columns.table(rows, ID_LIST_SCHEMA)


def status_table(
    outcomes: Iterable[TaskOutcome], user_id_type: str, previous_ok: Mapping[str, datetime]
) -> pa.Table:
    """One ``task_fetch_status`` row per task; a failure keeps the previous ``last_ok_at``."""
    rows = [
        {
            "task_id": o.task_id,
            "status": o.status,
            "follower_count": len(o.followers) if o.status == STATUS_OK else None,
            "pages": o.pages,
            "error_code": o.error_code,
            "error_msg": o.error_msg,
            "log_id": o.log_id,
            "user_id_type": user_id_type,
            "api": o.api,
            "fetched_at": o.fetched_at,
            "last_ok_at": o.fetched_at if o.status in FOLLOWER_SET_KNOWN else previous_ok.get(o.task_id),
            "observed_at": observed_at(o, previous_ok.get(o.task_id)),
        }
        for o in outcomes
    ]
    return arrow_columns.table_from_rows(rows, STATUS_SCHEMA)


def observed_at(outcome: TaskOutcome, previous: datetime | None) -> datetime | None:
    """When the follower set read is known to hold: the time of the event that explains a change,
    else the fetch's time; null when the outcome says nothing about the set.

    An event can arrive hours late: a change it explains happened after the task's previous
    observation, so its time is never taken from before that (nor after this fetch).
    """
    if outcome.status not in FOLLOWER_SET_KNOWN:
        return None
    if outcome.event_time is None:
        return outcome.fetched_at
    floor = max(outcome.event_time, previous) if previous is not None else outcome.event_time
    return min(floor, outcome.fetched_at)


_SECONDS_FIELDS = ("create_time", "update_time", "complete_time")


def unix_seconds_to_timestamp(value: Any) -> datetime | None:
    """Feishu's ``"1690000000"`` strings → aware datetimes; ``"0"``, empty or absurd → None."""
    try:
        seconds = int(str(value))
        return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None
    except (TypeError, ValueError, OverflowError, OSError):  # not a number, or past year 9999
        return None


def task_row(task: Mapping[str, Any]) -> dict[str, Any]:
    """A task object of the list endpoint, with Unix-second strings as timestamps."""
    row: dict[str, Any] = _storable(dict(task))
    for name in _SECONDS_FIELDS:
        if name in row:
            row[name] = unix_seconds_to_timestamp(row[name])
    due = row.get("due")
    if isinstance(due, dict) and "time" in due:
        row["due"] = dict(due, time=unix_seconds_to_timestamp(due["time"]))
    return row


# The task objects of the listing are stored as the server sent them (dlt makes columns and
# child tables of them), so whatever the server sends must be storable: dlt's normalizer
# recurses once per level (a hostile nesting ends in RecursionError) and refuses integers past
# 64 bits (stored as null), DuckDB and Postgres refuse lone surrogates, and keys named like
# dlt's own columns (``_dlt_id``, our ``_tombstone``) would corrupt the links between tables
# or delete rows.
MAX_NESTING = 8  # Feishu's task object nests 3 levels (origin.href.url); deeper is kept as JSON text
_INT64 = range(-(2**63), 2**63)


def _storable(value: Any, depth: int = 0) -> Any:
    """``value`` made storable by any destination, without changing what a sane answer holds."""
    if type(value) is dict:
        if depth >= MAX_NESTING:
            return _json_text(value)
        return {
            _text(str(key)) or "_": _storable(item, depth + 1)
            for key, item in value.items()
            if not str(key).startswith(("_dlt", TOMBSTONE))
        }
    if type(value) is list:
        return _json_text(value) if depth >= MAX_NESTING else [_storable(item, depth + 1) for item in value]
    if type(value) is int and value not in _INT64:
        return None  # as text, dlt would cast it back to the column's bigint, and fail there
    if type(value) is str:
        return _text(value)
    return value


def _json_text(value: Any) -> str | None:
    """Too deep to be columns: the JSON text (None if even that is too deep to encode)."""
    try:
        return _text(json.dumps(value, ensure_ascii=False))
    except (RecursionError, ValueError):
        return None


# ---------------------------------------------------------------------------- task lists (v2)
def unix_ms_to_timestamp(value: Any) -> datetime | None:
    """v2's Unix milliseconds (a JSON string or number) → aware datetimes; 0, empty or absurd → None."""
    if type(value) is bool:
        return None
    try:
        millis = int(value) if type(value) in (int, float) else int(str(value).strip())
        return datetime.fromtimestamp(millis / 1000, UTC) if millis > 0 else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _text(value: Any) -> str | None:
    """A string field as stored: a string (storable), else null: never the repr of something else."""
    if type(value) is not str:
        return None
    return value.encode("utf-8", "replace").decode("utf-8")


def _count(value: Any) -> int | None:
    """A count sent as a JSON number or a string of digits (v2 is typed int, shown as strings)."""
    if type(value) is str and value.strip().isdigit():
        value = int(value.strip())
    return value if type(value) is int and value in _INT64 else None


def _member_id(member: Any) -> str | None:
    return _text(member.get("id")) if type(member) is dict else None


def _flag(value: Any) -> bool | None:
    return value if type(value) is bool else None


def tasklist_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """A task list of ``GET /task/v2/tasklists``: ids of its creator and owner, times as timestamps."""
    return {
        "guid": str(item["guid"]),
        "name": _text(item.get("name")),
        "creator_id": _member_id(item.get("creator")),
        "owner_id": _member_id(item.get("owner")),
        "url": _text(item.get("url")),
        "created_at": unix_ms_to_timestamp(item.get("created_at")),
        "updated_at": unix_ms_to_timestamp(item.get("updated_at")),
        "archived_at": unix_ms_to_timestamp(item.get("archive_msec")),
    }


def _when(value: Any) -> tuple[datetime | None, bool | None]:
    """A v2 ``{timestamp, is_all_day}`` (due, start), or (None, None)."""
    if type(value) is not dict:
        return None, None
    return unix_ms_to_timestamp(value.get("timestamp")), _flag(value.get("is_all_day"))


def tasklist_task_rows(guid: str, tasks: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``tasklist_tasks`` for one list that was read whole; a tombstone if it is empty.

    The table is replaced per list (merge key ``tasklist_guid``): a task moved out of a list
    leaves it, and an emptied list has no rows.
    """
    rows = []
    for task in tasks:  # listed once each: read_tasklist drops a task listed twice
        due_at, due_all_day = _when(task.get("due"))
        start_at, start_all_day = _when(task.get("start"))
        rows.append(
            {
                "tasklist_guid": guid,
                "task_guid": str(task["guid"]),
                "summary": _text(task.get("summary")),
                "completed_at": unix_ms_to_timestamp(task.get("completed_at")),
                "due_at": due_at,
                "due_is_all_day": due_all_day,
                "start_at": start_at,
                "start_is_all_day": start_all_day,
                "subtask_count": _count(task.get("subtask_count")),
                TOMBSTONE: False,
            }
        )
    return rows or [{"tasklist_guid": guid, "task_guid": "", TOMBSTONE: True}]


def tasklist_status_row(outcome: TasklistOutcome, previous_ok: Mapping[str, datetime]) -> dict[str, Any]:
    """One ``tasklist_fetch_status`` row; a failure keeps the previous ``last_ok_at``."""
    ok = outcome.status == LIST_OK
    return {
        "tasklist_guid": outcome.guid,
        "status": outcome.status,
        "task_count": len(outcome.tasks) if ok else None,
        "pages": outcome.pages,
        "error_code": outcome.error_code,
        "error_msg": outcome.error_msg,
        "log_id": outcome.log_id,
        "fetched_at": outcome.fetched_at,
        "last_ok_at": outcome.fetched_at if ok else previous_ok.get(outcome.guid),
    }
