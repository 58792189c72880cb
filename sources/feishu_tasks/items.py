"""What crosses from the fetch to dlt: one union type, ``FetchItem``.

The fetch runs in a thread of its own (``bridge``); everything it hands to the dlt resources
is one of the items below, and each resource turns the kinds it makes a table of into rows
(``rows``, ``resources``). A new input or table starts here: a new item kind, or a new field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .pages import Follower
from .settings import STATUS_INVALID

# Outcomes recorded per list in ``tasklist_fetch_status.status``.
LIST_OK = "ok"
LIST_NOT_FOUND = "not_found"  # no such list (or a guid the API cannot parse)
LIST_FORBIDDEN = "no_permission"  # the credentials are not a member of it
LIST_FAILED = "failed"  # retries exhausted, a malformed answer, bounds reached
# Read before, and no longer among the lists the credentials are a member of (--all-tasklists):
# the app was removed from it, or it was deleted. Its tasks are read once more each run, so each
# gets the status that says what the app can still read.
LIST_GONE = "not_visible"
GONE_REASON = "no longer among the task lists the credentials are a member of (removed, or deleted)"


@dataclass
class TaskOutcome:
    """What one task's fetch produced: its followers, or why there are none to load."""

    task_id: str
    status: str
    fetched_at: datetime
    followers: list[Follower] = field(default_factory=list)
    pages: int = 0
    error_code: int | None = None
    error_msg: str | None = None
    log_id: str | None = None
    api: str | None = None  # "v1" or "v2": which API answered (None: no request was sent)
    # When an event explains the change, the event's time (else None: the fetch's time stands).
    event_time: datetime | None = None


def invalid_outcome(task_id: str, reason: str) -> TaskOutcome:
    """A task id rejected before any request was sent."""
    return TaskOutcome(task_id, STATUS_INVALID, datetime.now(UTC), error_msg=reason)


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


@dataclass
class OutcomeBatch:
    """Finished tasks, handed to dlt together (``task_followers``, ``…__id_list``, ``task_fetch_status``)."""

    outcomes: list[TaskOutcome]
    rows: int  # follower rows plus one per task: what a load of this batch writes


@dataclass
class DiscoveredTasks:
    """A page of task objects from the task listing (``discover``), for ``tasks``."""

    tasks: list[dict[str, Any]]


@dataclass
class DiscoveryDone:
    """End of the task listing: the newest ``update_time`` seen, and whether it ran to the end."""

    max_update_time: int | None
    complete: bool


@dataclass
class TasklistsListed:
    """A page of task list objects, for ``tasklists``."""

    tasklists: list[dict[str, Any]]


@dataclass
class TasklistDone:
    """One list read (or not): for ``tasklist_tasks`` and ``tasklist_fetch_status``."""

    outcome: TasklistOutcome


FetchItem = OutcomeBatch | DiscoveredTasks | DiscoveryDone | TasklistsListed | TasklistDone

# How the fetch hands an item on (through the bridge's bounded queue).
Emit = Callable[[FetchItem], Awaitable[None]]
