"""The listings that find a run's tasks: task lists (v2) and the v1 task listing (``discover``).

An app's tenant token cannot see a tenant's tasks; it sees the tasks of the task lists the app
was added to (v2 FAQ, docs/feishu-api.md). So the lists are the way in: with ``all_tasklists``
every list the credentials are a member of is read; with explicit ``tasklist_guids`` those (the
lists' own listing is still read, one request per 100 lists, for their names and owners). Each
list's outcome is emitted for the ``tasklist_*`` tables and its tasks are queued for their
followers. A list that cannot be read is data (its status row); only when nothing at all could
be read, and the run has no other input, does it stop.

``discover`` lists the tasks the token can see through v1's list endpoint (the tasks the app
created or was added to), page by page. Each listed task object carries its ``followers``
array; it is dropped as the page arrives (``LISTED_TASK_DROPS``): the follower relation is
``task_followers``, read page by page from the follower endpoint, and the arrays were a second
copy of it that dlt loaded row by row (``tasks__followers``: 3 GB of RSS at 20,000 tasks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .client import FeishuClient
from .endpoints import LIST_TASKS, TASKLIST_TASKS, TASKLISTS
from .errors import FatalError, RetriesExhausted, TaskError, business_code
from .items import (
    GONE_REASON,
    LIST_FAILED,
    LIST_FORBIDDEN,
    LIST_GONE,
    LIST_NOT_FOUND,
    LIST_OK,
    Emit,
    TasklistDone,
    TasklistOutcome,
    TasklistsListed,
    unreadable_list,
)
from .pages import parse_tasklist_tasks_page, parse_tasklists_page, parse_tasks_page
from .settings import (
    CODE_V2_BAD_PARAM,
    CODE_V2_NO_PERMISSION,
    CODE_V2_NOT_FOUND,
    TASKLIST_PAGE_SIZE,
    TASKS_PAGE_SIZE,
)
from .task_ids import normalize_task_id, unique_in_order

_LIST_STATUS_BY_CODE = {
    CODE_V2_NOT_FOUND: LIST_NOT_FOUND,
    CODE_V2_BAD_PARAM: LIST_NOT_FOUND,
    CODE_V2_NO_PERMISSION: LIST_FORBIDDEN,
}

Enqueue = Callable[[str, str], Awaitable[None]]

# Fields of a listed task object that are not loaded with it (see the module's docstring).
LISTED_TASK_DROPS = ("followers",)


# ---------------------------------------------------------------------------- task lists (v2)
@dataclass(frozen=True)
class KnownTasklists:
    """The lists a run read before (at the destination) and, for each, the tasks it held then."""

    guids: Sequence[str]
    tasks_of: Callable[[str], list[str]]


async def iter_visible_tasklists(
    client: FeishuClient, user_id_type: str
) -> AsyncIterator[list[dict[str, Any]]]:
    """The lists the credentials are a member of, a page at a time; raises TaskError if unreadable."""
    params = {"page_size": TASKLIST_PAGE_SIZE, "user_id_type": user_id_type}
    pages = client.paginate(TASKLISTS.path(), params, parse_tasklists_page, client.listing_bounds, TASKLISTS)
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
        async for page in client.paginate(
            path, params, parse_tasklist_tasks_page, client.listing_bounds, TASKLIST_TASKS
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


class ListReading:
    """Reads the run's task lists in order, one at a time, while the workers fetch followers."""

    def __init__(
        self,
        client: FeishuClient,
        user_id_type: str,
        emit: Emit,
        enqueue: Enqueue,
        count_listing_request: Callable[[], None],
        dry_run: bool = False,
        known: KnownTasklists | None = None,
    ) -> None:
        self.client, self.user_id_type = client, user_id_type
        self.known = known
        self.emit, self.enqueue, self.count_listing_request = emit, enqueue, count_listing_request
        self.dry_run = dry_run
        self.outcomes: list[TasklistOutcome] = []
        self.member_of_none = False  # all_tasklists, no list named, and the credentials see none
        self.by_status: dict[str, int] = {}  # the run's FetchStats.tasklists_by_status

    async def run(self, guids: list[str], all_tasklists: bool, completed: bool | None) -> None:
        """Read the lists; raises BudgetExhausted when the run's request cap stops it."""
        wanted: list[str] = []
        for raw in unique_in_order(guids):
            if guid := normalize_task_id(raw):
                wanted.append(guid)
            else:
                await self._done(unreadable_list(raw, "not a task list guid: a UUID was expected"))
        visible = await self._visible(set(wanted), all_tasklists)
        self.member_of_none = all_tasklists and not guids and not visible
        targets = list(dict.fromkeys([*wanted, *(visible if all_tasklists else [])]))
        if all_tasklists:
            await self._gone(set(targets))
        for guid in targets:
            outcome = await read_tasklist(self.client, guid, self.user_id_type, completed)
            for _ in range(max(1, outcome.pages)):
                self.count_listing_request()
            await self._done(outcome)
            for task_guid in outcome.task_guids if outcome.status == LIST_OK else ():
                if task_id := normalize_task_id(task_guid):
                    await self.enqueue(task_id, "tasklist")

    async def _visible(self, wanted: set[str], all_tasklists: bool) -> list[str]:
        """The guids of the lists the credentials can see (emitting the rows we keep)."""
        found: list[str] = []
        try:
            async for page in iter_visible_tasklists(self.client, self.user_id_type):
                self.count_listing_request()
                kept = [
                    item for item in page if all_tasklists or normalize_task_id(str(item["guid"])) in wanted
                ]
                if kept and not self.dry_run:
                    await self.emit(TasklistsListed(kept))
                found += [guid for item in page if (guid := normalize_task_id(str(item["guid"])))]
        except TaskError as exc:
            if all_tasklists and not wanted:
                advice = (
                    "the API kept failing (a 5xx, a timeout, rate limits); the next run tries again"
                    if isinstance(exc, RetriesExhausted)
                    else "check that the app has the task list read scope (task:tasklist:read) and is a "
                    "member of the lists"
                )
                why = f"cannot list the task lists the credentials can see ({exc})"
                raise FatalError(f"{why}; {advice}") from None
        return found

    async def _gone(self, seen: set[str]) -> None:
        """Lists read before that the credentials no longer see: a status that says so (their rows in
        ``tasklist_tasks`` stay, as for any list that cannot be read), and their tasks read again, so
        that each gets the status of what the app can still read of it (``no_permission`` keeps the
        task's rows)."""
        for guid in self.known.guids if self.known else ():
            if guid in seen:
                continue
            await self._done(TasklistOutcome(guid, LIST_GONE, datetime.now(UTC), error_msg=GONE_REASON))
            for task_guid in self.known.tasks_of(guid) if self.known else ():
                if task_id := normalize_task_id(task_guid):
                    await self.enqueue(task_id, "tasklist")

    async def _done(self, outcome: TasklistOutcome) -> None:
        self.outcomes.append(outcome)
        self.by_status[outcome.status] = self.by_status.get(outcome.status, 0) + 1
        if not self.dry_run:
            await self.emit(TasklistDone(outcome))

    def nothing_readable(self) -> str | None:
        """Why not one list could be read, when that is so (for a run with no other input)."""
        if self.member_of_none:
            return (
                "the credentials are a member of no task list (--all-tasklists found none); add the app "
                "as a member (viewer is enough) of the lists to read"
            )
        if not self.outcomes or any(o.status == LIST_OK for o in self.outcomes):
            return None
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        return (
            f"none of the {len(self.outcomes)} task lists could be read ({summary}); add the app as a "
            "member (viewer is enough) of the lists to read, or check their guids"
        )


# ---------------------------------------------------------------------------- the v1 task listing
async def iter_task_pages(
    client: FeishuClient, user_id_type: str, start_create_time: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Task objects (each with a string ``id``), a page at a time, within ``client.listing_bounds``.

    A failure raises the TaskError; the caller decides what it means for the run.
    """
    params: dict[str, Any] = {"page_size": TASKS_PAGE_SIZE, "user_id_type": user_id_type}
    if start_create_time is not None:
        params["start_create_time"] = str(int(start_create_time))
    pages = client.paginate(LIST_TASKS.path(), params, parse_tasks_page, client.listing_bounds, LIST_TASKS)
    async for page in pages:
        for task in page.items:
            for name in LISTED_TASK_DROPS:
                task.pop(name, None)
        yield page.items
