"""Fetch outcomes → Arrow tables, one per destination table.

Arrow keeps dlt's per-row Python normalizer out of the hot path. The follower tables carry
dlt's ``_dlt_id`` (deterministic, so ``task_followers__id_list`` can link to its parent row)
and a ``_tombstone`` column that dlt's merge uses to remove the rows of a task whose
followers are all gone: rows flagged true are deleted, never inserted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from .followers import TaskOutcome
from .settings import STATUS_OK

TOMBSTONE = "_tombstone"

FOLLOWERS_SCHEMA = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("follower_id", pa.string(), nullable=False),
        pa.field("user_id_type", pa.string(), nullable=False),
        pa.field("_dlt_id", pa.string(), nullable=False),
        pa.field(TOMBSTONE, pa.bool_(), nullable=False),
    ]
)

ID_LIST_SCHEMA = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("follower_id", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=True),
        pa.field("_dlt_list_idx", pa.int64(), nullable=False),
        pa.field("_dlt_parent_id", pa.string(), nullable=False),
        pa.field("_dlt_id", pa.string(), nullable=False),
        pa.field(TOMBSTONE, pa.bool_(), nullable=False),
    ]
)

STATUS_SCHEMA = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("follower_count", pa.int64(), nullable=True),
        pa.field("pages", pa.int64(), nullable=False),
        pa.field("error_code", pa.int64(), nullable=True),
        pa.field("error_msg", pa.string(), nullable=True),
        pa.field("log_id", pa.string(), nullable=True),
        pa.field("user_id_type", pa.string(), nullable=False),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("last_ok_at", pa.timestamp("us", tz="UTC"), nullable=True),
    ]
)


def row_id(*parts: str) -> str:
    """A stable 14-character id (dlt's length) for a row with this natural key."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=10).digest()
    return base64.urlsafe_b64encode(digest).decode()[:14]


def followers_table(outcomes: Iterable[TaskOutcome], user_id_type: str) -> pa.Table:
    """Rows of ``task_followers`` for the successful tasks; a tombstone for each empty one."""
    task_ids: list[str] = []
    follower_ids: list[str] = []
    ids: list[str] = []
    tombstones: list[bool] = []
    for outcome in outcomes:
        if outcome.status != STATUS_OK:
            continue  # a failed task keeps the rows it had
        if not outcome.followers:
            task_ids.append(outcome.task_id)
            follower_ids.append("")
            ids.append(row_id(outcome.task_id, ""))
            tombstones.append(True)
        for follower in outcome.followers:
            task_ids.append(outcome.task_id)
            follower_ids.append(follower.id)
            ids.append(row_id(outcome.task_id, follower.id))
            tombstones.append(False)
    return pa.table(
        [task_ids, follower_ids, [user_id_type] * len(task_ids), ids, tombstones],
        schema=FOLLOWERS_SCHEMA,
    )


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
        if outcome.status != STATUS_OK:
            continue
        listed = False
        for follower in outcome.followers:
            for idx, value in enumerate(follower.id_list or ()):
                add(outcome.task_id, follower.id, value, idx, False)
                listed = True
        if not listed:
            add(outcome.task_id, "", None, -1, True)
    return pa.table(rows, schema=ID_LIST_SCHEMA)


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
            "fetched_at": o.fetched_at,
            "last_ok_at": o.fetched_at if o.status == STATUS_OK else previous_ok.get(o.task_id),
        }
        for o in outcomes
    ]
    return pa.Table.from_pylist(rows, schema=STATUS_SCHEMA)


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
    row = _storable(dict(task))
    for name in _SECONDS_FIELDS:
        if name in row:
            row[name] = unix_seconds_to_timestamp(row[name])
    due = row.get("due")
    if isinstance(due, dict) and "time" in due:
        row["due"] = dict(due, time=unix_seconds_to_timestamp(due["time"]))
    return row


def _storable(task: dict[str, Any]) -> dict[str, Any]:
    """The task, with any lone surrogate (valid JSON, not valid UTF-8: unstorable) replaced by "?"."""
    try:
        json.dumps(task, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(task, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")
        return dict(json.loads(text))
    return task
