"""A change of the world → the task events Feishu would send for it (pure, given the coverage).

v2 ``task.task.update_user_access_v2`` for covered tasks (``event_types``: what kind of change),
v1 ``task.task.update_tenant_v1`` for every task of the tenant (when the app has that scope) and
v1 ``task.task.updated_v1`` for the tasks the app created (``obj_type`` 3 followers, 7 deleted).
Changes Feishu has no task event for (access, task lists, tokens) send nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..world import Change, ChangeKind
from . import envelopes

V2_TASK_EVENT = "task.task.update_user_access_v2"
V1_TENANT_EVENT = "task.task.update_tenant_v1"
V1_TASK_EVENT = "task.task.updated_v1"

FOLLOWER_KINDS = (ChangeKind.FOLLOWER_ADDED, ChangeKind.FOLLOWER_REMOVED, ChangeKind.FOLLOWERS_CLEARED)
V2_TYPES: dict[ChangeKind, str] = {
    ChangeKind.TASK_CREATED: "task_create",
    ChangeKind.TASK_DELETED: "task_deleted",
    ChangeKind.TASK_UPDATED: "task_summary_update",
    **{kind: "task_followers_update" for kind in FOLLOWER_KINDS},
}
V1_OBJ_TYPES: dict[ChangeKind, int] = {
    ChangeKind.TASK_DELETED: 7,
    ChangeKind.TASK_UPDATED: 1,
    **{kind: 3 for kind in FOLLOWER_KINDS},
}
V1_TENANT_EVENT_TYPES = {ChangeKind.TASK_CREATED: "create", ChangeKind.TASK_DELETED: "delete"}


@dataclass(frozen=True)
class TaskEvent:
    """One event to send: its type and its ``event`` fields (the envelope is added on sending)."""

    event_type: str
    event: dict[str, Any]


def task_events(
    change: Change, *, v2_covered: bool, app_created: bool, tenant_events: bool
) -> list[TaskEvent]:
    """The events Feishu sends for one change, in the order it would (v2, then v1)."""
    task_id = change.task_id
    if task_id is None or change.kind not in V2_TYPES:
        return []
    events: list[TaskEvent] = []
    if v2_covered:
        events.append(TaskEvent(V2_TASK_EVENT, envelopes.v2_task_event(task_id, (V2_TYPES[change.kind],))))
    if tenant_events:
        kind = V1_TENANT_EVENT_TYPES.get(change.kind, "update")
        events.append(TaskEvent(V1_TENANT_EVENT, envelopes.v1_tenant_task_event(task_id, kind)))
    if app_created and change.kind in V1_OBJ_TYPES:
        events.append(TaskEvent(V1_TASK_EVENT, envelopes.v1_task_event(task_id, V1_OBJ_TYPES[change.kind])))
    return events
