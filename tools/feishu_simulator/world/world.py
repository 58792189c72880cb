"""The simulated tenant: an object that composes the parts holding its data and holds none itself.

The parts, each its own module and class, each given what it needs by constructor:

- ``changes`` (``ChangeFeed``): the lock every part shares, and the hook every mutation goes
  through (``subscribe``; see its module for the threading rule);
- ``people`` (``People``): the users, their three id types, the user token bindings;
- ``tasks`` (``TaskStore``): the v1 task records, followers, create-time index, forbidden,
  v2-only and invalid ids;
- ``v2_tasks`` (``V2Tasks``): what v2 adds to each task, and app followers;
- ``tasklists`` (``Tasklists``): the v2 task lists, their members and tasks.

``World`` keeps the one API that tests, the demo, the benchmark and the HTTP handlers use:
each method hands over to the part that holds the data, and the few that span parts (a task's
creation and deletion, clearing all of its followers, the v2 task object) are written here.
A new concern (events, tenants) is a new part or a subscriber, not a change to the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import TaskForbidden
from . import seeded
from .changes import ChangeFeed, ChangeKind, Subscriber
from .people import People, User, make_users
from .records import Caller, Cursor, TaskRecord
from .tasklists import Tasklists
from .tasks import TaskStore
from .v2_tasks import V2Tasks

Render = Callable[[int], Any]


class World:
    """Users, tasks, task lists and their followers; mutable from tests while the server runs."""

    def __init__(self, users: list[User], *, seed: int = 0, anchor: int = seeded.DEFAULT_ANCHOR) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.anchor = anchor
        self.changes = ChangeFeed(self.lock)
        self.people = People(users, self.lock, self.changes)
        self.tasks = TaskStore(self.people, self.lock, self.changes, seed=seed, anchor=anchor)
        self.v2_tasks = V2Tasks(self.tasks, self.lock, self.changes, seed=seed)
        self.tasklists = Tasklists(
            self.tasks, self.v2_tasks, self.lock, self.changes, seed=seed, anchor=anchor
        )

    @classmethod
    def generate(
        cls,
        tasks: int = 100,
        seed: int = 0,
        users: int = 500,
        forbidden: int = 0,
        invalid: int = 0,
        anchor: int | None = None,
        followers_per_task: int | None = None,
        tasklists: int | None = None,
        v2_only: float = 0.0,
        app_followers: float = seeded.APP_FOLLOWER_SHARE,
    ) -> World:
        """Build a world that depends only on the arguments (never on the clock).

        Task ids come from ``random.Random(seed)`` and each task's attributes from its
        own derived generator, so ``generate(200, s)`` is a prefix of ``generate(1000, s)``
        (given the same ``users``).  ``forbidden`` tasks are picked among the generated
        ones; ``invalid`` extra ids go to ``world.invalid_ids``.  ``anchor`` is "now" for
        the generated timestamps (default: 2026-01-01, create times fall in the year before).
        ``followers_per_task`` gives every task exactly that many followers instead of the
        realistic mix (the benchmark's uniform million-row world).
        ``tasklists`` (default tasks // 6, within 4..48), ``v2_only`` (share of tasks v1 does
        not know) and ``app_followers`` (share of tasks with app followers) shape the task v2
        side; they never change what v1 shows of the tasks, except that ``v2_only`` tasks are
        unknown to v1.
        """
        world = cls(
            make_users(users, seed), seed=seed, anchor=seeded.DEFAULT_ANCHOR if anchor is None else anchor
        )
        with world.lock:
            for index in range(tasks):
                world._insert(world.tasks.draw_generated_task(index, followers_per_task), keep_sorted=False)
            world.tasks.sort_indexes()
            world.tasks.pick_forbidden(forbidden)
            world.tasks.invalid_ids = seeded.invalid_ids(seed, invalid, world.tasks)
            world.tasklists.populate(seeded.tasklist_count(tasklists, tasks))
            world.v2_tasks.pick_app_followers(app_followers)
            world.tasks.pick_v2_only(v2_only)
        return world

    def _insert(self, task: TaskRecord, keep_sorted: bool = True) -> None:
        """A new task in the v1 store and its v2 attributes (drawn in insert order)."""
        self.tasks.insert(task, keep_sorted)
        self.v2_tasks.register(task)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(change)`` after every later change; returns the call that stops it."""
        return self.changes.subscribe(subscriber)

    # ------------------------------------------------------------------ state the parts hold
    @property
    def users(self) -> list[User]:
        """The tenant's users, by index."""
        return self.people.users

    @property
    def forbidden(self) -> set[str]:
        """Tasks the app may not read (change with ``set_forbidden``)."""
        return self.tasks.forbidden

    @property
    def v2_only(self) -> set[str]:
        """Tasks v1 does not know while v2 serves them (change with ``set_v2_only``)."""
        return self.tasks.v2_only

    @property
    def invalid_ids(self) -> list[str]:
        """Ids the API rejects with 1470602: unknown UUIDs (even positions) and malformed strings."""
        return self.tasks.invalid_ids

    @property
    def app_names(self) -> dict[str, str]:
        """Other apps that follow some tasks: app id -> display name."""
        return self.v2_tasks.app_names

    @property
    def user_token_owners(self) -> dict[str, int]:
        """User token -> the user index it acts as (change with ``bind_user_token``)."""
        return self.people.user_token_owners

    @property
    def bump_update_time_on_follow_change(self) -> bool:
        """Whether add/remove follower bumps the task's update_time (undocumented upstream)."""
        return self.tasks.bump_update_time_on_follow_change

    @bump_update_time_on_follow_change.setter
    def bump_update_time_on_follow_change(self, value: bool) -> None:
        self.tasks.bump_update_time_on_follow_change = value

    # ------------------------------------------------------------------ people
    def user(self, user_id: str, user_id_type: str = "open_id") -> User:
        """The user behind an id of any type."""
        return self.people.user(user_id, user_id_type)

    def convert_id(self, user_id: str, from_type: str, to_type: str) -> str:
        """Map one user's id between id types."""
        return self.people.convert_id(user_id, from_type, to_type)

    def token_user(self, token: str) -> int:
        """The user index a user token acts as."""
        return self.people.token_user(token)

    def bind_user_token(self, token: str, user_index: int) -> None:
        """Let a user token act as ``user_index``."""
        self.people.bind_user_token(token, user_index)

    # ------------------------------------------------------------------ tasks (v1)
    def task_ids(self) -> list[str]:
        """Every task id (forbidden ones included), in creation order."""
        return self.tasks.task_ids()

    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.tasks

    def _task(self, task_id: str) -> TaskRecord:
        """The task's mutable record (tests/e2e/test_hostile.py edits one in place)."""
        return self.tasks.record(task_id)

    def followers(self, task_id: str, user_id_type: str = "open_id") -> list[str]:
        """The task's current followers as ids of the given type, in page order."""
        return self.tasks.followers(task_id, user_id_type)

    def follower_id_lists(self, task_id: str, user_id_type: str = "open_id") -> dict[str, list[str]]:
        """Follower id -> its id_list, only for the followers that have one."""
        return self.tasks.follower_id_lists(task_id, user_id_type)

    def task(self, task_id: str, user_id_type: str = "open_id") -> dict[str, Any]:
        """The task object exactly as the get-task endpoint renders it (ignores forbidden)."""
        return self.tasks.task(task_id, user_id_type)

    def follower_page(
        self, task_id: str, offset: int, limit: int, user_id_type: str
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the follower list (items, total count); raises for unreadable tasks."""
        return self.tasks.follower_page(task_id, offset, limit, user_id_type)

    def get_task(self, task_id: str, user_id_type: str) -> dict[str, Any]:
        """The v1 get-task answer; raises for unknown, v2-only or forbidden tasks."""
        return self.tasks.get_task(task_id, user_id_type)

    def list_tasks(
        self,
        *,
        limit: int,
        user_id_type: str,
        after: Cursor | None = None,
        start: int | None = None,
        end: int | None = None,
        completed: bool | None = None,
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of readable tasks by (create_time, id) and the cursor when more follow."""
        return self.tasks.list_tasks(
            limit=limit, user_id_type=user_id_type, after=after, start=start, end=end, completed=completed
        )

    def add_follower(self, task_id: str, user_index: int | None = None) -> str:
        """Add a user not yet following (``None`` = a deterministic pick); returns its open_id."""
        return self.tasks.add_follower(task_id, user_index)

    def remove_follower(self, task_id: str, open_id: str) -> None:
        """Remove one follower (by open_id); ValueError if it does not follow the task."""
        self.tasks.remove_follower(task_id, open_id)

    def touch(self, task_id: str, when: int | None = None) -> int:
        """Set update_time to ``when`` (default: now, and always later than before); returns it."""
        return self.tasks.touch(task_id, when)

    def set_forbidden(self, task_id: str, forbidden: bool = True) -> None:
        """Make an existing task unreadable for the app (400/1470432) or readable again."""
        self.tasks.set_forbidden(task_id, forbidden)

    def set_v2_only(self, task_id: str, v2_only: bool = True) -> None:
        """Make v1 deny knowing a task (400/1470602) while v2 serves it, or undo that."""
        self.tasks.set_v2_only(task_id, v2_only)

    # ------------------------------------------------------------------ mutators that span parts
    def add_task(self, followers: int = 3, create_time: int | None = None) -> str:
        """Create an open task with ``followers`` random followers; returns its id.

        ``create_time`` defaults to the wall clock (never before the world's anchor).
        """
        with self.changes.mutation() as note:
            task = self.tasks.draw_added_task(followers, create_time)
            self._insert(task)
            note(ChangeKind.TASK_CREATED, task.id)
            return task.id

    def delete_task(self, task_id: str) -> None:
        """Delete a task: v1 answers "task not found" (1470602), v2 1470404; it leaves its lists."""
        with self.changes.mutation() as note:
            self.tasks.record(task_id)
            self.tasklists.forget_task(task_id)
            self.v2_tasks.forget(task_id)
            self.tasks.delete(task_id)
            note(ChangeKind.TASK_DELETED, task_id)

    def remove_all_followers(self, task_id: str) -> None:
        """Leave the task with no followers (app followers, which only v2 shows, included)."""
        with self.changes.mutation() as note:
            task = self.tasks.record(task_id)
            users = self.people.ids("open_id")
            removed = [(users[u], "user") for u in self.tasks.clear_followers(task_id)]
            removed += [(app, "app") for app in self.v2_tasks.clear_app_followers(task_id)]
            if removed:
                self.tasks.follow_changed(task)
                note(ChangeKind.FOLLOWERS_CLEARED, task_id, followers=tuple(removed))

    # ------------------------------------------------------------------ tasks (v2)
    def v2_task_answer(
        self, task_id: str, caller: Caller, user_id_type: str, stamp: Render, count: Render
    ) -> dict[str, Any]:
        """The v2 get-task object; raises for unknown and forbidden tasks (v2-only ones are fine)."""
        with self.lock:
            self.tasks.record(task_id)
            if task_id in self.tasks.forbidden:
                raise TaskForbidden(task_id)
            return self._v2_task(task_id, caller, user_id_type, stamp, count)

    def v2_task(self, task_id: str, user_id_type: str = "open_id", caller: Caller = None) -> dict[str, Any]:
        """The v2 task object as get task renders it for ``caller`` (ignores ``forbidden``)."""
        with self.lock:
            return self._v2_task(task_id, caller, user_id_type, str, int)

    def _v2_task(
        self, task_id: str, caller: Caller, user_id_type: str, stamp: Render, count: Render
    ) -> dict[str, Any]:
        shown = self.tasklists.shown_to(task_id, caller)
        return self.v2_tasks.render(task_id, shown, user_id_type, stamp, count)

    def v2_followers(self, task_id: str, user_id_type: str = "open_id") -> list[tuple[str, str]]:
        """(id, type) of the task's v2 followers: the v1 followers as users, then its apps."""
        return self.v2_tasks.v2_followers(task_id, user_id_type)

    def v2_assignees(self, task_id: str, user_id_type: str = "open_id") -> list[str]:
        """User ids of the task's assignees (the v1 collaborators)."""
        return self.v2_tasks.v2_assignees(task_id, user_id_type)

    def display_id(self, task_id: str) -> str:
        """The task's short display id (``task_id`` in v2 answers, e.g. ``t104121``)."""
        return self.v2_tasks.display_id(task_id)

    def created_ms(self, task_id: str) -> int:
        """The task's v2 ``created_at`` (its v1 create_time in ms plus a fixed ms part)."""
        return self.v2_tasks.created_ms(task_id)

    def add_app_follower(self, task_id: str, app_id: str | None = None) -> str:
        """Make an app follow a task (None = one of ``app_names`` not yet following); returns its id."""
        return self.v2_tasks.add_app_follower(task_id, app_id)

    def remove_app_follower(self, task_id: str, app_id: str) -> None:
        """Stop an app following a task; ValueError if it does not."""
        self.v2_tasks.remove_app_follower(task_id, app_id)

    # ------------------------------------------------------------------ task lists
    def tasklist_page(
        self,
        caller: Caller,
        *,
        after: Cursor | None,
        limit: int,
        user_id_type: str,
        app_id: str,
        stamp: Render,
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of the caller's lists by (created ms, guid); the cursor when more follow."""
        return self.tasklists.tasklist_page(
            caller, after=after, limit=limit, user_id_type=user_id_type, app_id=app_id, stamp=stamp
        )

    def tasklist_task_page(
        self,
        guid: str,
        caller: Caller,
        *,
        after: Cursor | None,
        limit: int,
        completed: bool | None,
        created_from: int | None,
        created_to: int | None,
        user_id_type: str,
        stamp: Render,
        count: Render,
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of a list's task summaries by (created ms, guid), within [from, to] inclusive."""
        return self.tasklists.tasklist_task_page(
            guid,
            caller,
            after=after,
            limit=limit,
            completed=completed,
            created_from=created_from,
            created_to=created_to,
            user_id_type=user_id_type,
            stamp=stamp,
            count=count,
        )

    def tasklist_guids(self) -> list[str]:
        """Every list guid (whoever may see it), in the order the list endpoint uses."""
        return self.tasklists.tasklist_guids()

    def visible_tasklists(self, user_index: int | None = None) -> list[str]:
        """Guids the list endpoint returns to the app (None) or to a user, in its order."""
        return self.tasklists.visible_tasklists(user_index)

    def find_tasklists(
        self,
        *,
        app_member: bool | None = None,
        forbidden: bool | None = None,
        archived: bool | None = None,
        user_member: int | None = None,
    ) -> list[str]:
        """Guids of the lists with the given traits (None = either), in list-endpoint order."""
        return self.tasklists.find_tasklists(
            app_member=app_member, forbidden=forbidden, archived=archived, user_member=user_member
        )

    def tasklist_tasks(
        self,
        guid: str,
        completed: bool | None = None,
        created_from: int | None = None,
        created_to: int | None = None,
    ) -> list[str]:
        """Task guids of a list in the endpoint's order and filters (ignores permissions)."""
        return self.tasklists.tasklist_tasks(guid, completed, created_from, created_to)

    def tasklists_of(self, task_id: str) -> list[str]:
        """The guids of the lists a task is in (whoever may see them), in joining order."""
        return self.tasklists.tasklists_of(task_id)

    def tasklist(self, guid: str, user_id_type: str = "open_id", app_id: str = "cli_demo") -> dict[str, Any]:
        """The list object as the list endpoint renders it (ignores permissions)."""
        return self.tasklists.tasklist(guid, user_id_type, app_id)

    def add_tasklist(
        self,
        name: str | None = None,
        *,
        app_role: str | None = "viewer",
        members: Iterable[int] = (),
        owner: int | None = None,
        created_ms: int | None = None,
    ) -> str:
        """Create an empty list (the app a member with ``app_role``, None = not a member)."""
        return self.tasklists.add_tasklist(
            name, app_role=app_role, members=members, owner=owner, created_ms=created_ms
        )

    def remove_tasklist(self, guid: str) -> None:
        """Delete a list (its guid answers 404 from now on); its tasks stay."""
        self.tasklists.remove_tasklist(guid)

    def add_task_to_tasklist(self, guid: str, task_id: str, section_guid: str | None = None) -> None:
        """Put a task into a list (default section); ValueError if it is there already."""
        self.tasklists.add_task_to_tasklist(guid, task_id, section_guid)

    def remove_task_from_tasklist(self, guid: str, task_id: str) -> None:
        """Take a task out of a list; ValueError if it is not there."""
        self.tasklists.remove_task_from_tasklist(guid, task_id)

    def archive_tasklist(self, guid: str, archived: bool = True, when_ms: int | None = None) -> int:
        """Archive a list (default: its update + 1 s) or unarchive it; returns the new ``archive_msec``."""
        return self.tasklists.archive_tasklist(guid, archived, when_ms)

    def set_tasklist_forbidden(self, guid: str, forbidden: bool = True) -> None:
        """Keep the list listed but make its tasks answer 403/1470403 (or readable again)."""
        self.tasklists.set_tasklist_forbidden(guid, forbidden)

    def set_tasklist_app_role(self, guid: str, role: str | None) -> None:
        """Make the app a member with ``role`` ("viewer" / "editor"), or no member (None)."""
        self.tasklists.set_tasklist_app_role(guid, role)

    def set_tasklist_member(self, guid: str, user_index: int, role: str | None = "viewer") -> None:
        """Add a user to a list with ``role``, or remove it (None); the owner stays."""
        self.tasklists.set_tasklist_member(guid, user_index, role)
