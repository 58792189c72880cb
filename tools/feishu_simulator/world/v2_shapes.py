"""Task v2 answer shapes: world records rendered as the API's JSON objects.

Pure functions.  ``ids`` maps user indexes to ids of the requested ``user_id_type`` (app and
chat ids never change with it).  ``stamp`` renders a millisecond timestamp and ``count`` a
count: ``str`` and ``int`` by default (as the docs show them), swapped by fault switches so
that a client is tested against both JSON types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .records import Tasklist, TaskRecord, TaskV2

Render = Callable[[int], Any]

TASKLIST_URL = "https://applink.feishu.cn/client/todo/task_list?guid={guid}"
TASK_URL = "https://applink.feishu.cn/client/todo/detail?guid={guid}&suite_entity_num={display_id}"
OR_SIGN_MODE = 2  # "or-sign": the task is done when any assignee completes it


def member(member_id: str, member_type: str, role: str, name: str | None = None) -> dict[str, Any]:
    """A ``member`` object: ``{id, type, role, name?}``."""
    out = {"id": member_id, "type": member_type, "role": role}
    if name is not None:
        out["name"] = name
    return out


def tasklist(tl: Tasklist, ids: list[str], app_id: str, stamp: Render) -> dict[str, Any]:
    """A Tasklist: owner apart, members are users, then chats, then the app if it is one."""
    members = [member(ids[u], "user", role) for u, role in tl.members.items()]
    members += [member(chat, "chat", role) for chat, role in tl.chats]
    if tl.app_role is not None:
        members.append(member(app_id, "app", tl.app_role))
    return {
        "guid": tl.guid,
        "name": tl.name,
        "creator": member(ids[tl.creator], "user", "creator"),
        "owner": member(ids[tl.owner], "user", "owner"),
        "members": members,
        "url": TASKLIST_URL.format(guid=tl.guid),
        "created_at": stamp(tl.created_ms),
        "updated_at": stamp(tl.updated_ms),
        "archive_msec": stamp(tl.archive_ms),
    }


def assignees(task: TaskRecord, ids: list[str]) -> list[dict[str, Any]]:
    """The assignee members (the v1 collaborators)."""
    return [member(ids[u], "user", "assignee") for u in task.collaborators]


def task_members(
    task: TaskRecord, extra: TaskV2, ids: list[str], app_names: dict[str, str]
) -> list[dict[str, Any]]:
    """Every member: assignees, then user followers in v1 order, then app followers.

    A user both assignee and follower appears twice, once per role.
    """
    out = assignees(task, ids)
    out += [member(ids[u], "user", "follower") for u in task.followers]
    out += [member(app, "app", "follower", app_names.get(app)) for app in extra.app_followers]
    return out


def _times(task: TaskRecord, extra: TaskV2, stamp: Render) -> dict[str, Any]:
    """completed_at ("0" when open), due and start (only when set)."""
    completed = task.complete_time * 1000 + extra.ms if task.complete_time else 0
    out: dict[str, Any] = {"completed_at": stamp(completed)}
    if task.due is not None:
        out["due"] = {"timestamp": stamp(int(task.due["time"]) * 1000), "is_all_day": task.due["is_all_day"]}
    if extra.start is not None:
        out["start"] = {"timestamp": stamp(extra.start[0]), "is_all_day": extra.start[1]}
    return out


def task_summary(
    task: TaskRecord, extra: TaskV2, ids: list[str], stamp: Render, count: Render
) -> dict[str, Any]:
    """A TaskSummary of the list-tasks endpoint.

    Its ``members`` are the assignees only: the docs do not say the list is complete, and a
    client must take followers from get task.
    """
    return {
        "guid": task.id,
        "summary": task.summary,
        **_times(task, extra, stamp),
        "members": assignees(task, ids),
        "subtask_count": count(extra.subtask_count),
    }


def task(
    task: TaskRecord,
    extra: TaskV2,
    ids: list[str],
    app_names: dict[str, str],
    tasklists: list[tuple[str, str]],
    stamp: Render,
    count: Render,
) -> dict[str, Any]:
    """The get-task object; ``tasklists`` are the (list guid, section guid) pairs to show."""
    return {
        "guid": task.id,
        "task_id": extra.display_id,
        "summary": task.summary,
        "description": task.description,
        "creator": member(ids[task.creator], "user", "creator"),
        "members": task_members(task, extra, ids, app_names),
        "created_at": stamp(task.create_time * 1000 + extra.ms),
        "updated_at": stamp(task.update_time * 1000 + extra.ms),
        **_times(task, extra, stamp),
        "status": "done" if task.complete_time else "todo",
        "tasklists": [{"tasklist_guid": g, "section_guid": s} for g, s in tasklists],
        "url": TASK_URL.format(guid=task.id, display_id=extra.display_id),
        "extra": task.extra,
        "source": task.source,
        "mode": OR_SIGN_MODE,
        "is_milestone": False,
        "subtask_count": count(extra.subtask_count),
    }
