"""Task v2 read endpoints: task lists, the tasks of a list, and get task with its members.

What the simulator answers, and where it comes from.  Sources: the Feishu Open Platform pages
open.feishu.cn/document/task-v2/{overview, faq, tasklist/list, tasklist/tasks, task/get} (read
in the mirror github.com/wxkingstar/doc-hub-mcp, ``feishu/003-服务端API/task-v2/``, commit
34b438e; the Lark English pages open.larksuite.com/document/uAjLw4CM/ukTMukTMukTM/task-v2/...
say the same).

Documented:

- Envelope ``{code, msg, data}``; error bodies ``{code, msg, error: {log_id, ...}}`` (the
  overview's example), here with ``troubleshooter`` and the ``X-Tt-Logid`` header as in v1.
- Error codes (overview, "API Error Specification", and each endpoint's table):
  400 / 1470400 every parameter error, the msg naming the parameter ("Invalid Param
  'summary', must not be empty." is the overview's example), e.g. page_size out of 1..100,
  an invalid guid; 403 / 1470403 no read permission on the list or task; 404 / 1470404 the
  list or task does not exist or was deleted; 500 / 1470500 server error (retry).  The
  list-of-lists page names only 1470400 and 1470500.
- Paging: page_size 1..100, default 50; page_token at most 100 characters.
- Times are Unix milliseconds, always JSON strings ("0" = not completed / not archived);
  counts (subtask_count) are ints.  Members are ``{id, type, role}``; type user, chat or app;
  an app's id is its app id ("cli_..."), a chat's its open chat id, whatever user_id_type
  says.  Task roles: assignee, follower; list roles: owner, editor, viewer.  A user can be
  both assignee and follower.
- An app sees a list only as a member of it (FAQ); get task shows in ``tasklists`` only the
  lists the caller may read (task/get).  ``status`` is "todo" or "done".
- Rate limits: 1000/minute and 50/second for both list endpoints, 10/second for get task
  (see ``quota.DOCUMENTED_LIMITS``).

The docs are silent, so the simulator picks (a client must not rely on these):

- The last page omits ``page_token`` (each endpoint page's rule); the overview says it is
  "" instead: the fault ``v2_empty_page_token_on_last_page`` answers that way.
- A malformed guid (not 8-4-4-4-12 hex) answers 400/1470400; a well-formed unknown one
  404/1470404.  An unknown ``user_id_type`` or a bad ``completed`` / ``created_*`` is
  400/1470400.  A page token of another list is 400/1470400.
- Archived lists are listed (with their ``archive_msec``) and readable.  A *forbidden* list
  is listed but its tasks answer 403; a list the caller is not a member of is not listed
  and answers 403.  Lists come in creation order, a list's tasks in creation order (upstream:
  "custom" order); the ``created_*`` filters are inclusive.
- TaskSummary ``members`` are the assignees only (the docs do not say they are complete).
- A user token sees the lists its user belongs to; get task reads follow the v1 rule
  (``World.forbidden``) for every caller.
- Rate-limit answers are the gateway's 99991400 as in v1 (v1 pages also name 1470450
  "request too fast"; not simulated).  Token errors are the platform's, as in v1.
- A v1 task id is the v2 guid (the docs' examples suggest it; not stated).  v2-only tasks
  (``World.v2_only``) answer 400/1470602 on the v1 endpoints.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from aiohttp import web

from ..errors import TaskForbidden, TasklistForbidden, TasklistNotFound, TaskNotFound
from ..faults import Faults
from ..world import ID_TYPES, World
from . import v2_paging
from .answers import Answer, Route, fail, ok

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_PAGE = 100
DEFAULT_PAGE = 50

SERVER_ERROR = (1470500, "server error")
TASKLIST_NOT_FOUND = (1470404, "tasklist not found or deleted")
TASK_NOT_FOUND = (1470404, "task not found or deleted")
TASKLIST_FORBIDDEN = (1470403, "no permission to read the tasklist")
TASK_FORBIDDEN = (1470403, "no permission to read the task")
PARAM_ERROR = 1470400


class InvalidParam(Exception):
    """A request parameter is wrong: 400/1470400 with the parameter in the msg."""

    def __init__(self, name: str, why: str = "") -> None:
        super().__init__(f"Invalid Param '{name}'{', ' + why if why else ''}.")


Method = Callable[[Any, web.Request, Faults], Answer]


def _answering(method: Method) -> Method:
    """Turn the world's refusals and bad parameters into v2 error answers."""

    @wraps(method)
    def run(self: Any, request: web.Request, faults: Faults) -> Answer:
        try:
            return method(self, request, faults)
        except InvalidParam as exc:
            return fail((PARAM_ERROR, str(exc)), 400)
        except TasklistNotFound:
            return fail(TASKLIST_NOT_FOUND, 404)
        except TaskNotFound:
            return fail(TASK_NOT_FOUND, 404)
        except TasklistForbidden:
            return fail(TASKLIST_FORBIDDEN, 403)
        except TaskForbidden:
            return fail(TASK_FORBIDDEN, 403)

    return run


# ---------------------------------------------------------------------- parameters
def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidParam("page_size", f"must be between 1 and {MAX_PAGE}")
    return int(raw)


def _id_type(raw: str | None) -> str:
    if raw is None or raw == "":
        return "open_id"
    if raw not in ID_TYPES:
        raise InvalidParam("user_id_type")
    return raw


def _flag(name: str, raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise InvalidParam(name, "must be true or false")
    return raw.lower() == "true"


def _millis(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise InvalidParam(name, "must be a timestamp in milliseconds")
    return int(raw)


def _guid(name: str, raw: str) -> str:
    if not GUID_RE.match(raw):
        raise InvalidParam(name)
    return raw


def _renderers(faults: Faults) -> tuple[Callable[[int], Any], Callable[[int], Any]]:
    """(stamp, count): how timestamps and counts go into JSON under the current faults."""
    return (int if faults.v2_numeric_timestamps else str), (str if faults.v2_string_counts else int)


def _paged(items: list[dict[str, Any]], token: str | None, faults: Faults) -> dict[str, Any]:
    data: dict[str, Any] = {"items": items, "has_more": token is not None}
    if token is not None:
        data["page_token"] = token
    elif faults.v2_empty_page_token_on_last_page:
        data["page_token"] = ""
    return data


class V2Api:
    """The task v2 handlers over one world, for the app ``app_id``."""

    def __init__(self, world: World, app_id: str) -> None:
        self.world = world
        self.app_id = app_id

    def routes(self) -> list[Route]:
        """Every v2 route."""
        lists, list_tasks = (
            "/open-apis/task/v2/tasklists",
            "/open-apis/task/v2/tasklists/{tasklist_guid}/tasks",
        )
        return [
            Route(lists, "v2_tasklists", self.tasklists, SERVER_ERROR),
            Route(list_tasks, "v2_tasklist_tasks", self.tasklist_tasks, SERVER_ERROR),
            Route("/open-apis/task/v2/tasks/{task_guid}", "v2_get_task", self.get_task, SERVER_ERROR),
        ]

    def caller(self, request: web.Request) -> int | None:
        """None for the app's tenant token, else the user index the user token acts as."""
        token = request.headers.get("Authorization", "")[7:].strip()
        return self.world.token_user(token) if token.startswith("u-") else None

    @_answering
    def tasklists(self, request: web.Request, faults: Faults) -> Answer:
        """The lists the caller belongs to, by creation."""
        query = request.query
        size = _page_size(query.get("page_size"))
        id_type = _id_type(query.get("user_id_type"))
        after = None
        if token := query.get("page_token"):
            after = v2_paging.tasklists_cursor(token)
            if after is None:
                raise InvalidParam("page_token")
        stamp, _ = _renderers(faults)
        caller = self.caller(request)
        items, cursor = self.world.tasklist_page(
            caller, after=after, limit=size, user_id_type=id_type, app_id=self.app_id, stamp=stamp
        )
        return ok(_paged(items, None if cursor is None else v2_paging.tasklists_token(cursor), faults))

    @_answering
    def tasklist_tasks(self, request: web.Request, faults: Faults) -> Answer:
        """Task summaries of one list, by creation, with the completed / created filters."""
        guid = _guid("tasklist_guid", request.match_info["tasklist_guid"])
        query = request.query
        size = _page_size(query.get("page_size"))
        id_type = _id_type(query.get("user_id_type"))
        completed = _flag("completed", query.get("completed"))
        created_from = _millis("created_from", query.get("created_from"))
        created_to = _millis("created_to", query.get("created_to"))
        after = None
        if token := query.get("page_token"):
            after = v2_paging.tasks_cursor(token, guid)
            if after is None:
                raise InvalidParam("page_token")
        stamp, count = _renderers(faults)
        items, cursor = self.world.tasklist_task_page(
            guid,
            self.caller(request),
            after=after,
            limit=size,
            completed=completed,
            created_from=created_from,
            created_to=created_to,
            user_id_type=id_type,
            stamp=stamp,
            count=count,
        )
        return ok(_paged(items, None if cursor is None else v2_paging.tasks_token(guid, cursor), faults))

    @_answering
    def get_task(self, request: web.Request, faults: Faults) -> Answer:
        """One task under ``data.task`` with all its members."""
        guid = _guid("task_guid", request.match_info["task_guid"])
        id_type = _id_type(request.query.get("user_id_type"))
        stamp, count = _renderers(faults)
        task = self.world.v2_task_answer(guid, self.caller(request), id_type, stamp, count)
        return ok({"task": task})
