"""The task-list input of a run: find the lists, read each one, hand on its tasks.

With ``all_tasklists`` every list the credentials are a member of is read; with explicit
``tasklist_guids`` those (the lists' own listing is still read, one request per 100 lists, for
their names and owners). Each list's outcome is emitted for the ``tasklist_*`` tables and
its tasks are queued for their followers. A list that cannot be read is data (its status
row); only when nothing at all could be read, and the run has no other input, does it stop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .client import FeishuClient
from .errors import FatalError, TaskError
from .task_ids import normalize_task_id, unique_in_order
from .task_lists import LIST_OK, TasklistOutcome, iter_visible_tasklists, read_tasklist, unreadable_list


@dataclass
class TasklistsListed:
    """A page of task list objects, for the ``tasklists`` table."""

    tasklists: list[dict[str, Any]]


@dataclass
class TasklistDone:
    """One list read (or not): for ``tasklist_tasks`` and ``tasklist_fetch_status``."""

    outcome: TasklistOutcome


Emit = Callable[[Any], Awaitable[None]]
Enqueue = Callable[[str, str], Awaitable[None]]


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
    ) -> None:
        self.client, self.user_id_type = client, user_id_type
        self.emit, self.enqueue, self.count_listing_request = emit, enqueue, count_listing_request
        self.dry_run = dry_run
        self.outcomes: list[TasklistOutcome] = []
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
        targets = list(dict.fromkeys([*wanted, *(visible if all_tasklists else [])]))
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
                raise FatalError(
                    f"cannot list the task lists the credentials can see ({exc}); check that the app has "
                    "the task list read scope (task:tasklist:read) and is a member of the lists"
                ) from None
        return found

    async def _done(self, outcome: TasklistOutcome) -> None:
        self.outcomes.append(outcome)
        self.by_status[outcome.status] = self.by_status.get(outcome.status, 0) + 1
        if not self.dry_run:
            await self.emit(TasklistDone(outcome))

    def nothing_readable(self) -> str | None:
        """Why not one list could be read, when that is so (for a run with no other input)."""
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
