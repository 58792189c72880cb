"""Task v1 answer shapes: task records rendered as the API's JSON objects.

Pure functions.  ``ids`` maps user indexes to ids of the requested ``user_id_type``.
"""

from __future__ import annotations

from typing import Any

from .records import TaskRecord


def task(record: TaskRecord, ids: list[str]) -> dict[str, Any]:
    """The task object of get task and list tasks, with people as ids of one type."""
    out: dict[str, Any] = {
        "id": record.id,
        "summary": record.summary,
        "description": record.description,
        "creator_id": ids[record.creator],
        "create_time": str(record.create_time),
        "update_time": str(record.update_time),
        "complete_time": str(record.complete_time),
        "origin": {
            "platform_i18n_name": record.origin["platform_i18n_name"],
            "href": dict(record.origin["href"]),
        },
        "extra": record.extra,
        "custom": record.custom,
        "source": record.source,
        "followers": [{"id": ids[u]} for u in record.followers],
        "collaborators": [{"id": ids[u]} for u in record.collaborators],
        "repeat_rule": "",
        "rich_summary": record.summary,
        "rich_description": record.description,
    }
    if record.due is not None:
        out["due"] = dict(record.due)
    return out


def follower_items(record: TaskRecord, offset: int, limit: int, ids: list[str]) -> list[dict[str, Any]]:
    """One page of the follower list: ``{id}``, plus ``id_list`` for the followers that have one."""
    items: list[dict[str, Any]] = []
    for u in record.followers[offset : offset + limit]:
        extra = record.id_lists.get(u)
        if extra is None:
            items.append({"id": ids[u]})
        else:
            items.append({"id": ids[u], "id_list": [ids[x] for x in extra]})
    return items
