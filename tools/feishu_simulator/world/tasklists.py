"""Task lists (task v2): the lists, who belongs to each, and which tasks each holds.

Callers: ``None`` is the app (tenant token); an int is a user index (user token, see
``People.token_user``).  The app sees the lists it is a member of; a user the lists it owns or
is a member of.  A *forbidden* list is listed but its tasks answer 403 (membership revoked
between two calls, say); a list the caller is not a member of is not listed and answers 403.

Every request is O(log n + page) (plus lists skipped while listing lists: lists are few):
each list keeps its tasks as sorted (created ms, guid) keys, split by completion like the v1
list index, and this part keeps each task's lists in joining order.  The tasks themselves
come from ``TaskStore`` and ``V2Tasks`` (given by constructor).

Reads hold the world's lock; each public mutator goes through the change feed and notes one
change.  ``populate``, ``forget_task`` and ``shown_to`` are building blocks of ``World``.
"""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import TasklistForbidden, TasklistNotFound
from . import seeded, v2_shapes
from .changes import ChangeFeed, ChangeKind
from .records import Caller, Cursor, Tasklist
from .tasks import TaskStore
from .v2_tasks import V2Tasks


def _key(cursor: Cursor | None) -> Cursor:
    return cursor if cursor is not None else (-1, "")


class Tasklists:
    """The task lists of one world and their tasks."""

    def __init__(
        self,
        tasks: TaskStore,
        v2_tasks: V2Tasks,
        lock: threading.RLock,
        feed: ChangeFeed,
        *,
        seed: int,
        anchor: int,
    ) -> None:
        self.tasks = tasks
        self.v2_tasks = v2_tasks
        self.seed = seed
        self.anchor = anchor
        self._lock = lock
        self._feed = feed
        self._lists: dict[str, Tasklist] = {}
        self._order: list[Cursor] = []  # sorted (created ms, guid)
        self._lists_of: dict[str, tuple[str, ...]] = {}  # task id -> list guids, in joining order
        self._rng = random.Random(f"{seed}:tasklists:added")
        self._added = 0

    # -------------------------------------------------------- building blocks (the caller holds the lock)
    def populate(self, count: int) -> None:
        """``count`` seeded lists, then the seeded lists each task joins (see ``seeded``)."""
        list_rng = random.Random(f"{self.seed}:tasklists")
        n_users = len(self.tasks.people)
        guids = []
        for index in range(count):
            tasklist = seeded.generated_tasklist(
                index, list_rng, n_users=n_users, anchor=self.anchor, fresh_guid=self._fresh_guid
            )
            self._put(tasklist)
            guids.append(tasklist.guid)
        join_rng = random.Random(f"{self.seed}:tasklists:tasks")
        for task_id in self.tasks.task_ids():
            for guid in seeded.lists_to_join(join_rng, guids):
                tasklist = self._lists[guid]
                self._join(tasklist, task_id, join_rng.choice(tasklist.sections), keep_sorted=False)
        for guid in guids:
            for keys in self._lists[guid].keys.values():
                keys.sort()

    def forget_task(self, task_id: str) -> None:
        """Take a task out of every list (it is being deleted)."""
        for guid in self._lists_of.get(task_id, ()):
            self._leave(self._lists[guid], task_id)

    def shown_to(self, task_id: str, caller: Caller) -> list[tuple[str, str]]:
        """(list guid, section guid) of the task's lists the caller may read (get task shows only those)."""
        shown = []
        for guid in self._lists_of.get(task_id, ()):
            tasklist = self._lists[guid]
            if tasklist.has_member(caller) and not tasklist.forbidden:
                shown.append((guid, tasklist.section_of[task_id]))
        return shown

    def _fresh_guid(self, rng: random.Random) -> str:
        while True:
            guid = seeded.guid(rng)
            if guid not in self._lists and guid not in self.tasks:
                return guid

    def _put(self, tasklist: Tasklist) -> None:
        self._lists[tasklist.guid] = tasklist
        bisect.insort(self._order, (tasklist.created_ms, tasklist.guid))

    def _task_keys(self, task_id: str) -> tuple[Cursor, tuple[bool | None, bool]]:
        """The task's key in a list's indexes, and the two indexes (all, its completion state) it is in."""
        task = self.tasks.record(task_id)
        return (self.v2_tasks.extras(task_id).created_ms(task), task_id), (None, task.complete_time > 0)

    def _join(self, tasklist: Tasklist, task_id: str, section: str, keep_sorted: bool = True) -> None:
        """Put a task into a list (and the list into the task's lists)."""
        key, states = self._task_keys(task_id)
        for state in states:
            if keep_sorted:
                bisect.insort(tasklist.keys[state], key)
            else:
                tasklist.keys[state].append(key)
        tasklist.section_of[task_id] = section
        self._lists_of[task_id] = (*self._lists_of.get(task_id, ()), tasklist.guid)

    def _leave(self, tasklist: Tasklist, task_id: str) -> None:
        """Take a task out of a list (and the list out of the task's lists)."""
        key, states = self._task_keys(task_id)
        for state in states:
            tasklist.keys[state].remove(key)
        del tasklist.section_of[task_id]
        self._drop_list_of(task_id, tasklist.guid)

    def _drop_list_of(self, task_id: str, guid: str) -> None:
        remaining = tuple(g for g in self._lists_of.get(task_id, ()) if g != guid)
        if remaining:
            self._lists_of[task_id] = remaining
        else:
            self._lists_of.pop(task_id, None)

    def _tasklist(self, guid: str) -> Tasklist:
        try:
            return self._lists[guid]
        except KeyError:
            raise TasklistNotFound(guid) from None

    def _readable_tasklist(self, guid: str, caller: Caller) -> Tasklist:
        """The list if the caller may read its tasks; unknown, foreign and forbidden lists raise."""
        tasklist = self._tasklist(guid)
        if tasklist.forbidden or not tasklist.has_member(caller):
            raise TasklistForbidden(guid)
        return tasklist

    # ------------------------------------------------------------------ what the endpoints answer
    def tasklist_page(
        self,
        caller: Caller,
        *,
        after: Cursor | None,
        limit: int,
        user_id_type: str,
        app_id: str,
        stamp: Callable[[int], Any],
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of the caller's lists by (created ms, guid); the cursor when more follow."""
        with self._lock:
            keys = self._order
            ids = self.tasks.people.ids(user_id_type)
            out: list[dict[str, Any]] = []
            last: Cursor | None = None
            for i in range(bisect.bisect_right(keys, _key(after)), len(keys)):
                tasklist = self._lists[keys[i][1]]
                if not tasklist.has_member(caller):
                    continue
                if len(out) == limit:
                    return out, last
                out.append(v2_shapes.tasklist(tasklist, ids, app_id, stamp))
                last = keys[i]
            return out, None

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
        stamp: Callable[[int], Any],
        count: Callable[[int], Any],
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of a list's task summaries by (created ms, guid), within [from, to] inclusive."""
        with self._lock:
            keys = self._readable_tasklist(guid, caller).keys[completed]
            lo = bisect.bisect_left(keys, (created_from, "")) if created_from is not None else 0
            lo = max(lo, bisect.bisect_right(keys, _key(after)))
            hi = len(keys) if created_to is None else bisect.bisect_left(keys, (created_to + 1, ""))
            ids = self.tasks.people.ids(user_id_type)
            page = keys[lo : min(hi, lo + limit)]
            record, extras = self.tasks.record, self.v2_tasks.extras
            out = [v2_shapes.task_summary(record(t), extras(t), ids, stamp, count) for _, t in page]
            return out, (page[-1] if lo + limit < hi else None)

    # ------------------------------------------------------------------ truth for tests
    def tasklist_guids(self) -> list[str]:
        """Every list guid (whoever may see it), in the order the list endpoint uses."""
        with self._lock:
            return [guid for _, guid in self._order]

    def visible_tasklists(self, user_index: int | None = None) -> list[str]:
        """Guids the list endpoint returns to the app (None) or to a user, in its order."""
        with self._lock:
            return [g for _, g in self._order if self._lists[g].has_member(user_index)]

    def find_tasklists(
        self,
        *,
        app_member: bool | None = None,
        forbidden: bool | None = None,
        archived: bool | None = None,
        user_member: int | None = None,
    ) -> list[str]:
        """Guids of the lists with the given traits (None = either), in list-endpoint order."""

        def fits(tl: Tasklist) -> bool:
            return (
                (app_member is None or (tl.app_role is not None) == app_member)
                and (forbidden is None or tl.forbidden == forbidden)
                and (archived is None or (tl.archive_ms > 0) == archived)
                and (user_member is None or tl.has_member(user_member))
            )

        with self._lock:
            return [guid for _, guid in self._order if fits(self._lists[guid])]

    def tasklist_tasks(
        self,
        guid: str,
        completed: bool | None = None,
        created_from: int | None = None,
        created_to: int | None = None,
    ) -> list[str]:
        """Task guids of a list in the endpoint's order and filters (ignores permissions)."""
        with self._lock:
            keys = self._tasklist(guid).keys[completed]
            return [
                task_id
                for created, task_id in keys
                if (created_from is None or created >= created_from)
                and (created_to is None or created <= created_to)
            ]

    def tasklists_of(self, task_id: str) -> list[str]:
        """The guids of the lists a task is in (whoever may see them), in joining order."""
        with self._lock:
            self.tasks.record(task_id)
            return list(self._lists_of.get(task_id, ()))

    def tasklist(self, guid: str, user_id_type: str = "open_id", app_id: str = "cli_demo") -> dict[str, Any]:
        """The list object as the list endpoint renders it (ignores permissions)."""
        with self._lock:
            return v2_shapes.tasklist(self._tasklist(guid), self.tasks.people.ids(user_id_type), app_id, str)

    # ------------------------------------------------------------------ mutators (one change each)
    def add_tasklist(
        self,
        name: str | None = None,
        *,
        app_role: str | None = "viewer",
        members: Iterable[int] = (),
        owner: int | None = None,
        created_ms: int | None = None,
    ) -> str:
        """Create an empty list (the app a member with ``app_role``, None = not a member).

        ``members`` are user indexes (viewers); ``created_ms`` defaults to after every list.
        """
        with self._feed.mutation() as note:
            rng = self._rng
            self._added += 1
            owner = rng.randrange(len(self.tasks.people)) if owner is None else owner
            if created_ms is None:
                newest = self._order[-1][0] if self._order else self.anchor * 1000
                created_ms = max(newest, self.anchor * 1000) + 1000
            tasklist = Tasklist(
                guid=self._fresh_guid(rng),
                name=name or f"Added list {self._added}",
                creator=owner,
                owner=owner,
                members={u: "viewer" for u in members if u != owner},
                chats=[],
                app_role=app_role,
                created_ms=created_ms,
                updated_ms=created_ms,
                sections=[seeded.guid(rng)],
            )
            self._put(tasklist)
            note(ChangeKind.TASKLIST_CREATED, tasklist_guid=tasklist.guid)
            return tasklist.guid

    def remove_tasklist(self, guid: str) -> None:
        """Delete a list (its guid answers 404 from now on); its tasks stay."""
        with self._feed.mutation() as note:
            tasklist = self._tasklist(guid)
            for task_id in tasklist.section_of:
                self._drop_list_of(task_id, guid)
            del self._lists[guid]
            self._order.remove((tasklist.created_ms, guid))
            note(ChangeKind.TASKLIST_DELETED, tasklist_guid=guid)

    def add_task_to_tasklist(self, guid: str, task_id: str, section_guid: str | None = None) -> None:
        """Put a task into a list (default section); ValueError if it is there already."""
        with self._feed.mutation() as note:
            tasklist = self._tasklist(guid)
            self.tasks.record(task_id)
            if task_id in tasklist.section_of:
                raise ValueError(f"{task_id} is already in {guid}")
            if section_guid is not None and section_guid not in tasklist.sections:
                raise ValueError(f"{section_guid} is not a section of {guid}")
            self._join(tasklist, task_id, section_guid or tasklist.sections[0])
            note(ChangeKind.TASK_ADDED_TO_TASKLIST, task_id, tasklist_guid=guid)

    def remove_task_from_tasklist(self, guid: str, task_id: str) -> None:
        """Take a task out of a list; ValueError if it is not there."""
        with self._feed.mutation() as note:
            tasklist = self._tasklist(guid)
            self.tasks.record(task_id)
            if task_id not in tasklist.section_of:
                raise ValueError(f"{task_id} is not in {guid}")
            self._leave(tasklist, task_id)
            note(ChangeKind.TASK_REMOVED_FROM_TASKLIST, task_id, tasklist_guid=guid)

    def archive_tasklist(self, guid: str, archived: bool = True, when_ms: int | None = None) -> int:
        """Archive a list (``archive_msec`` = ``when_ms``, default its update + 1 s) or unarchive it.

        Returns the new ``archive_msec`` (0 when unarchived).  Archived lists stay listed and readable.
        """
        with self._feed.mutation():  # not the bare lock: the change is delivered after it is released
            tasklist = self._tasklist(guid)
            if not archived:
                archive_ms = 0
            else:
                archive_ms = tasklist.updated_ms + 1000 if when_ms is None else int(when_ms)
            self._update(guid, "archive_ms", archive_ms)
            return archive_ms

    def set_tasklist_forbidden(self, guid: str, forbidden: bool = True) -> None:
        """Keep the list listed but make its tasks answer 403/1470403 (or readable again)."""
        self._update(guid, "forbidden", forbidden)

    def set_tasklist_app_role(self, guid: str, role: str | None) -> None:
        """Make the app a member with ``role`` ("viewer" / "editor"), or no member (None)."""
        self._update(guid, "app_role", role)

    def set_tasklist_member(self, guid: str, user_index: int, role: str | None = "viewer") -> None:
        """Add a user to a list with ``role``, or remove it (None); the owner stays."""
        with self._feed.mutation() as note:
            tasklist = self._tasklist(guid)
            if user_index == tasklist.owner or tasklist.members.get(user_index) == role:
                return
            if role is None:
                del tasklist.members[user_index]
            else:
                tasklist.members[user_index] = role
            note(ChangeKind.TASKLIST_UPDATED, tasklist_guid=guid, attribute="members", user_index=user_index)

    def _update(self, guid: str, attribute: str, value: object) -> None:
        """Set one attribute of a list: a list update when it changes the value."""
        with self._feed.mutation() as note:
            tasklist = self._tasklist(guid)
            if getattr(tasklist, attribute) != value:
                setattr(tasklist, attribute, value)
                note(ChangeKind.TASKLIST_UPDATED, tasklist_guid=guid, attribute=attribute)
