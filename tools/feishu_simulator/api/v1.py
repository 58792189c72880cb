"""Task v1 endpoints: list followers, list tasks, get task.

Parameters are checked as the v1 pages document them (99992402 field validation, 1470421 page
too large, 1470422 bad page token); the world's refusals become 1470602 (unknown task) and
1470432 (no permission).  The pagination faults of ``Faults`` (endless pages, repeated or
missing tokens, a spoiled page of one task) are applied here, where the page is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from aiohttp import web

from ..errors import TaskForbidden, TaskNotFound
from ..faults import ENDLESS_KINDS, Faults
from ..world import ID_TYPES, World
from . import paging
from .answers import FAULT_KEY, Answer, Route, fail, ok

TASK_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FOLLOWERS_MAX_PAGE = 50
TASKS_MAX_PAGE = 100
DEFAULT_PAGE = 50
FAR_CREATE_TIME = 10**12  # listing cursors past every task, for endless listings

FIELD_VALIDATION = (99992402, "field validation failed")
PAGE_SIZE_TOO_LARGE = (1470421, "page_size is too large")
PAGE_TOKEN_INVALID = (1470422, "page_token is invalid")
INVALID_TASK_ID = (1470602, "invalid task id")
TASK_NOT_FOUND = (1470602, "task not found")
NO_PERMISSION = (1470432, "no permission to get the task")
INTERNAL_ERROR = (1470605, "internal error")


class ParamError(Exception):
    """A query parameter is wrong; carries the (code, msg) to answer with HTTP 400."""

    def __init__(self, error: tuple[int, str]) -> None:
        super().__init__(error[1])
        self.error = error


Method = Callable[[Any, web.Request, Faults], Answer]


def _answering(method: Method) -> Method:
    """Turn bad parameters and the world's refusals into v1 error answers."""

    @wraps(method)
    def run(self: Any, request: web.Request, faults: Faults) -> Answer:
        try:
            return method(self, request, faults)
        except ParamError as exc:
            return fail(exc.error)
        except TaskNotFound:
            return fail(TASK_NOT_FOUND)
        except TaskForbidden:
            return fail(NO_PERMISSION)

    return run


# ---------------------------------------------------------------------- parameters
def _page_size(raw: str | None, maximum: int) -> int:
    """page_size: default 50, a positive integer, at most ``maximum`` (else 1470421)."""
    if raw is None or raw == "":
        return min(DEFAULT_PAGE, maximum)
    if not raw.isdigit() or int(raw) < 1:
        raise ParamError(FIELD_VALIDATION)
    size = int(raw)
    if size > maximum:
        raise ParamError(PAGE_SIZE_TOO_LARGE)
    return size


def _id_type(raw: str | None) -> str:
    """user_id_type: open_id by default, else one of the three known types."""
    if raw is None or raw == "":
        return "open_id"
    if raw not in ID_TYPES:
        raise ParamError(FIELD_VALIDATION)
    return raw


def _seconds(raw: str | None) -> int | None:
    """A create-time bound: a string of Unix seconds, or absent."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ParamError(FIELD_VALIDATION)
    return int(raw)


def _flag(raw: str | None) -> bool | None:
    """task_completed: true/false (any case), or absent."""
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise ParamError(FIELD_VALIDATION)
    return lowered == "true"


def _task_id(request: web.Request) -> str:
    """The path's task id, if it is shaped like one (else 1470602 "invalid task id")."""
    task_id = request.match_info["task_id"]
    if not TASK_ID_RE.match(task_id):
        raise ParamError(INVALID_TASK_ID)
    return task_id


# ---------------------------------------------------------------------- faults of follower pages
def _fails_now(task_id: str, faults: Faults) -> bool:
    """Whether this follower request of ``task_id`` is one of its scripted 500s."""
    if task_id in faults.always_fail_tasks:
        return True
    remaining = faults.fail_first_n_requests_for.get(task_id, 0)
    if remaining > 0:
        faults.fail_first_n_requests_for[task_id] = remaining - 1
        return True
    return False


def _follower_page_data(
    task_id: str,
    items: list[dict[str, Any]],
    offset: int,
    size: int,
    total: int,
    endless: str | None,
    faults: Faults,
) -> dict[str, Any]:
    """A follower page's ``data``: items, has_more and page_token, as the pagination faults say."""
    end = offset + len(items)
    data: dict[str, Any] = {"items": items, "has_more": end < total}
    if endless is not None:  # a fresh token every time, so only a bound ends the paging
        if endless == "endless_items":
            items.extend({"id": f"ou_endless_{offset + i:012d}"} for i in range(len(items), size))
        data["has_more"] = True
        data["page_token"] = paging.follower_token(task_id, offset + size)
    elif task_id in faults.repeat_page_token_tasks:
        data["has_more"] = True
        data["page_token"] = paging.follower_token(task_id, size)
    elif end < total:
        data["page_token"] = paging.follower_token(task_id, end)
    elif faults.omit_has_more_with_empty_token:
        data["has_more"] = True
        data["page_token"] = ""
    elif faults.page_token_on_last_page:
        data["page_token"] = paging.follower_token(task_id, end)
    return data


class V1Api:
    """The task v1 handlers over one world."""

    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[Route]:
        """Every v1 route (the followers path before the get-task path it extends)."""
        return [
            Route(
                "/open-apis/task/v1/tasks/{task_id}/followers", "followers", self.followers, INTERNAL_ERROR
            ),
            Route("/open-apis/task/v1/tasks", "list_tasks", self.list_tasks, INTERNAL_ERROR),
            Route("/open-apis/task/v1/tasks/{task_id}", "get_task", self.get_task, INTERNAL_ERROR),
        ]

    @_answering
    def followers(self, request: web.Request, faults: Faults) -> Answer:
        """List followers: offset-based pages behind opaque tokens bound to the task."""
        query = request.query
        id_type = _id_type(query.get("user_id_type"))
        size = _page_size(query.get("page_size"), FOLLOWERS_MAX_PAGE)
        task_id = _task_id(request)
        offset = 0
        if token := query.get("page_token"):
            parsed = paging.follower_offset(token, task_id)
            if parsed is None:
                raise ParamError(PAGE_TOKEN_INVALID)
            offset = parsed
        if _fails_now(task_id, faults):
            return fail(INTERNAL_ERROR, 500)
        if task_id in faults.task_codes:  # one task refused with a code the others never get
            refusal = (faults.task_codes[task_id], "refused for this task")
            return fail(refusal, faults.token_error_http_status)
        items, total = self.world.follower_page(task_id, offset, size, id_type)
        endless = None
        fault = faults.page_faults.get(task_id)
        if fault is not None and fault.applies(offset // size + 1):
            if fault.kind in ENDLESS_KINDS:
                endless = fault.kind
            else:
                request[FAULT_KEY] = fault.kind
        return ok(_follower_page_data(task_id, items, offset, size, total, endless, faults))

    @_answering
    def list_tasks(self, request: web.Request, faults: Faults) -> Answer:
        """List readable tasks by (create_time, id) with inclusive create-time filters."""
        query = request.query
        id_type = _id_type(query.get("user_id_type"))
        size = _page_size(query.get("page_size"), TASKS_MAX_PAGE)
        start = _seconds(query.get("start_create_time"))
        end = _seconds(query.get("end_create_time"))
        completed = _flag(query.get("task_completed"))
        after = None
        if token := query.get("page_token"):
            after = paging.list_cursor(token)
            if after is None:
                raise ParamError(PAGE_TOKEN_INVALID)
        items, cursor = self.world.list_tasks(
            limit=size, user_id_type=id_type, after=after, start=start, end=end, completed=completed
        )
        fault = faults.list_tasks_fault
        if fault is not None and fault.applies(fault.page):
            if fault.kind in ENDLESS_KINDS and cursor is None:  # past the end: a fresh cursor each time
                cursor = (max(FAR_CREATE_TIME, after[0] + 1 if after else 0), "")
            elif fault.kind not in ENDLESS_KINDS:
                request[FAULT_KEY] = fault.kind
        data: dict[str, Any] = {"items": items, "has_more": cursor is not None}
        if cursor is not None:
            data["page_token"] = paging.list_token(cursor)
        return ok(data)

    @_answering
    def get_task(self, request: web.Request, faults: Faults) -> Answer:
        """One task object under ``data.task``."""
        id_type = _id_type(request.query.get("user_id_type"))
        return ok({"task": self.world.get_task(_task_id(request), id_type)})
