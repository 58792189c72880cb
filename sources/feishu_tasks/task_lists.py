"""Task lists (task v2): which lists the credentials can see, and the tasks of each list.

An app's tenant token cannot see a tenant's tasks; it sees the tasks of the task lists the app
was added to (v2 FAQ, docs/feishu-api.md). So the lists are the way in: each list's tasks
become task ids to fetch, and a list that cannot be read is recorded, never fatal by itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .client import FeishuClient
from .endpoints import TASKLIST_TASKS, TASKLISTS
from .errors import TaskError, business_code
from .pages import parse_tasklist_tasks_page, parse_tasklists_page
from .pagination import iter_pages
from .settings import CODE_V2_BAD_PARAM, CODE_V2_NO_PERMISSION, CODE_V2_NOT_FOUND, TASKLIST_PAGE_SIZE

# Outcomes recorded per list in ``tasklist_fetch_status.status``.
LIST_OK = "ok"
LIST_NOT_FOUND = "not_found"  # no such list (or a guid the API cannot parse)
LIST_FORBIDDEN = "no_permission"  # the credentials are not a member of it
LIST_FAILED = "failed"  # retries exhausted, a malformed answer, bounds reached

_LIST_STATUS_BY_CODE = {
    CODE_V2_NOT_FOUND: LIST_NOT_FOUND,
    CODE_V2_BAD_PARAM: LIST_NOT_FOUND,
    CODE_V2_NO_PERMISSION: LIST_FORBIDDEN,
}


@dataclass
class TasklistOutcome:
    """What reading one list produced: its tasks (as the API summarised them), or why not."""

    guid: str
    status: str
    fetched_at: datetime
    tasks: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    error_code: int | None = None
    error_msg: str | None = None
    log_id: str | None = None

    @property
    def task_guids(self) -> list[str]:
        return [str(task["guid"]) for task in self.tasks]


def unreadable_list(guid: str, reason: str) -> TasklistOutcome:
    """A list guid rejected before any request was sent."""
    return TasklistOutcome(guid, LIST_NOT_FOUND, datetime.now(UTC), error_msg=reason)


async def iter_visible_tasklists(
    client: FeishuClient, user_id_type: str
) -> AsyncIterator[list[dict[str, Any]]]:
    """The lists the credentials are a member of, a page at a time; raises TaskError if unreadable."""
    params = {"page_size": TASKLIST_PAGE_SIZE, "user_id_type": user_id_type}
    pages = iter_pages(
        client, TASKLISTS.path(), params, parse_tasklists_page, client.listing_bounds, TASKLISTS
    )
    async for page in pages:
        yield page.items


async def read_tasklist(
    client: FeishuClient, guid: str, user_id_type: str, completed: bool | None = None
) -> TasklistOutcome:
    """Every task of one list (``completed`` filters: true, false, or None for all)."""
    outcome = TasklistOutcome(guid, LIST_OK, datetime.now(UTC))
    params: dict[str, Any] = {"page_size": TASKLIST_PAGE_SIZE, "user_id_type": user_id_type}
    if completed is not None:
        params["completed"] = "true" if completed else "false"
    seen: set[str] = set()
    path = TASKLIST_TASKS.path(guid)
    try:
        async for page in iter_pages(
            client, path, params, parse_tasklist_tasks_page, client.listing_bounds, TASKLIST_TASKS
        ):
            outcome.pages += 1
            outcome.log_id = page.log_id
            for task in page.items:
                if task["guid"] not in seen:  # a task listed twice is in the list once
                    seen.add(task["guid"])
                    outcome.tasks.append(task)
    except TaskError as exc:
        outcome.status, outcome.tasks = _LIST_STATUS_BY_CODE.get(business_code(exc) or 0, LIST_FAILED), []
        outcome.error_code, outcome.error_msg = exc.code, str(exc)
        outcome.log_id = exc.log_id or outcome.log_id
    return outcome
