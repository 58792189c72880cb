"""The JSON of the events Feishu sends, as pure functions (docs/feishu-api.md, "Events").

Task events and ``app_open`` / ``app_status_change`` ride the 2.0 envelope here as in Feishu's
current docs; ``app_ticket`` the older 1.0 one, as its page shows. Either envelope may carry any
event: ``v1_envelope`` is also how a test sends a task event the old way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Origin:
    """Who the events are for: the app, its tenant, and the verification token they carry."""

    app_id: str
    tenant_key: str
    token: str


def v2_envelope(
    origin: Origin, event_id: str, event_type: str, at_ms: int, event: dict[str, Any]
) -> dict[str, Any]:
    """Schema 2.0: ``header`` says what and for whom, ``event`` the event's own fields."""
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": event_type,
            "create_time": str(at_ms),
            "token": origin.token,
            "app_id": origin.app_id,
            "tenant_key": origin.tenant_key,
        },
        "event": event,
    }


def v1_envelope(
    origin: Origin, uuid: str, event_type: str, at_ms: int, event: dict[str, Any]
) -> dict[str, Any]:
    """Schema 1.0: ``uuid``, ``token``, ``ts`` (seconds, a string), the event with its ``type`` inside."""
    inner = {"app_id": origin.app_id, "tenant_key": origin.tenant_key, **event, "type": event_type}
    return {
        "uuid": uuid,
        "token": origin.token,
        "ts": f"{at_ms / 1000:.3f}",
        "type": "event_callback",
        "event": inner,
    }


def url_verification(challenge: str, token: str) -> dict[str, Any]:
    """What registering a request URL sends (answer ``{"challenge": ...}`` within 1 s)."""
    return {"challenge": challenge, "token": token, "type": "url_verification"}


def v2_task_event(task_guid: str, event_types: tuple[str, ...]) -> dict[str, Any]:
    """``task.task.update_user_access_v2``: which task, and which kinds of change (not who)."""
    return {"task_guid": task_guid, "event_types": list(event_types)}


def v1_tenant_task_event(task_id: str, event_type: str) -> dict[str, Any]:
    """``task.task.update_tenant_v1``: any task of the tenant (``object_type`` values undocumented)."""
    return {"task_id": task_id, "object_type": "task", "event_type": event_type, "user_id_list": []}


def v1_task_event(task_id: str, obj_type: int) -> dict[str, Any]:
    """``task.task.updated_v1``: a task the app created; ``obj_type`` 3 followers, 7 deleted."""
    return {"task_id": task_id, "obj_type": obj_type}
