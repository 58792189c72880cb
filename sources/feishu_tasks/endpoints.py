"""The endpoints the connector reads, each with its API version and its own documented quota.

Feishu counts quota per endpoint, per app and tenant (docs/feishu-api.md): the follower list
and the task listing of v1, and the task lists, a list's tasks and get task of v2 each have a
budget of their own, so the client paces each one separately (``ratelimit.Pacing``). Where a
page states no figure, the reference says to assume 1,000/minute and 50/second; get task v2 is
documented at 10/second (and nothing per minute, so at most 600 in one).

The version matters for errors too: the same code means different things (1470403 is "neither
a user nor a tenant token" in v1 and "no permission on this task or list" in v2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from .errors import ConfigError

Family = Literal["v1", "v2"]


@dataclass(frozen=True)
class Endpoint:
    """One read endpoint: its name (for config and stats), version, path and documented quota."""

    name: str
    family: Family
    path_template: str
    per_second: float
    per_minute: float

    def path(self, guid: str = "") -> str:
        """The path, with a (validated, still percent-encoded) id where the template has one."""
        return self.path_template.format(guid=quote(guid, safe=""))


FOLLOWERS = Endpoint("followers_v1", "v1", "/open-apis/task/v1/tasks/{guid}/followers", 50, 1000)
LIST_TASKS = Endpoint("list_tasks_v1", "v1", "/open-apis/task/v1/tasks", 50, 1000)
TASKLISTS = Endpoint("tasklists_v2", "v2", "/open-apis/task/v2/tasklists", 50, 1000)
TASKLIST_TASKS = Endpoint("tasklist_tasks_v2", "v2", "/open-apis/task/v2/tasklists/{guid}/tasks", 50, 1000)
GET_TASK = Endpoint("get_task_v2", "v2", "/open-apis/task/v2/tasks/{guid}", 10, 600)

ENDPOINTS = {e.name: e for e in (FOLLOWERS, LIST_TASKS, TASKLISTS, TASKLIST_TASKS, GET_TASK)}


def parse_endpoint_limits(
    raw: Mapping[str, Sequence[float | None]] | None,
) -> dict[str, tuple[float | None, float | None]]:
    """``{"get_task_v2": [10, 600]}`` checked: known endpoints, two numbers (or nulls) each."""
    limits: dict[str, tuple[float | None, float | None]] = {}
    for name, pair in (raw or {}).items():
        if name not in ENDPOINTS:
            raise ConfigError(f"endpoint_limits: unknown endpoint {name!r}; known: {', '.join(ENDPOINTS)}")
        values = list(pair) if isinstance(pair, list | tuple) else []
        if len(values) != 2 or not all(v is None or (type(v) in (int, float) and v >= 0) for v in values):
            raise ConfigError(
                f"endpoint_limits[{name!r}]: expected [per second, per minute] (number or null), got {pair!r}"
            )
        limits[name] = (values[0] or None, values[1] or None)
    return limits
