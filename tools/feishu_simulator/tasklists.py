"""The world's task v2 side: task lists, task members, app followers and v2-only tasks.

A mixin of ``World``, so that one lock and one set of tasks serve both API versions and
stay consistent under every mutation: v2 followers are the v1 followers (user members, in
v1 order) plus app followers that only v2 shows; v2 assignees are the v1 collaborators (the
v2 overview says v1 called assignees "collaborators"); a v2 guid is the v1 task id.

Callers: ``None`` is the app (tenant token); an int is a user index (user token, see
``token_user``).  The app sees the lists it is a member of; a user the lists it owns or is a
member of.  A *forbidden* list is listed but its tasks answer 403 (membership revoked
between two calls, say); a list the caller is not a member of is not listed and answers 403.
Task reads in v2 follow the v1 rule (``World.forbidden``) for every caller.

Every request is O(log n + page) (plus lists skipped while listing lists: lists are few):
each list keeps its tasks as sorted (created ms, guid) keys, split by completion like the
v1 list index, and each task its lists.
"""

from __future__ import annotations

import bisect
import random
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import v2_shapes
from .errors import TaskForbidden, TasklistForbidden, TasklistNotFound

if TYPE_CHECKING:
    from .world import User, _Task

#: Share of generated tasks with one or two app followers (which only v2 shows).
APP_FOLLOWER_SHARE = 0.05
#: The user a user token acts as unless ``bind_user_token`` says otherwise.
DEFAULT_TOKEN_USER = 0
#: Share of tasks in the first ("backlog") list, so that one list pages past 100 tasks.
BACKLOG_SHARE = 0.6
#: How many further lists a task joins, and how likely each number is.
EXTRA_LIST_COUNTS = (0, 1, 2, 3)
EXTRA_LIST_WEIGHTS = (0.45, 0.40, 0.12, 0.03)
ARCHIVED_SHARE = 0.12
NOT_A_MEMBER_SHARE = 0.12  # lists the app is not a member of
FORBIDDEN_SHARE = 0.06  # lists the app is a member of but may not read
TOKEN_USER_SHARE = 0.4  # lists the default token user belongs to
START_SHARE = 0.4  # tasks with a due that also have a start
APP_POOL_SIZE = 4
DAY_MS = 86_400_000

_TEAMS = ("Platform", "Growth", "Finance", "Design", "Support", "Data", "Security", "Sales")
_KINDS = ("backlog", "sprint", "roadmap", "launch plan", "OKRs", "bugs", "onboarding", "ops")
_APP_NAMES = ("Ticket Bot", "CI Reporter", "Survey Helper", "Approval Flow", "Calendar Sync")

Caller = int | None
Cursor = tuple[int, str]


@dataclass(slots=True)
class TaskV2:
    """What task v2 shows of a task beyond its v1 record (tuples, replaced when they change)."""

    display_id: str  # the short "t123456" id, not the guid
    ms: int  # millisecond part added to the v1 second timestamps
    start: tuple[int, bool] | None  # (timestamp ms, is_all_day)
    subtask_count: int
    app_followers: tuple[str, ...] = ()
    tasklists: tuple[str, ...] = ()  # guids, in joining order

    def created_ms(self, task: _Task) -> int:
        return task.create_time * 1000 + self.ms


@dataclass(slots=True)
class Tasklist:
    """One task list: people as user indexes, its tasks as sorted keys per completion state."""

    guid: str
    name: str
    creator: int
    owner: int
    members: dict[int, str]  # user index -> "editor" | "viewer" (the owner is apart)
    chats: list[tuple[str, str]]  # (open_chat_id, role)
    app_role: str | None  # the calling app's role; None: the app is not a member
    created_ms: int
    updated_ms: int
    archive_ms: int = 0
    forbidden: bool = False
    sections: list[str] = field(default_factory=list)
    section_of: dict[str, str] = field(default_factory=dict)  # task guid -> section guid
    keys: dict[bool | None, list[Cursor]] = field(default_factory=lambda: {None: [], True: [], False: []})

    def has_member(self, caller: Caller) -> bool:
        """Whether the caller (None = the app) belongs to the list."""
        if caller is None:
            return self.app_role is not None
        return caller == self.owner or caller in self.members


def _guid(rng: random.Random) -> str:
    """A lowercase 8-4-4-4-12 hex guid (task list guids are not UUID4s upstream either)."""
    return str(uuid.UUID(int=rng.getrandbits(128)))


def _key(cursor: Cursor | None) -> Cursor:
    return cursor if cursor is not None else (-1, "")


class TasklistsMixin:
    """Task lists, v2 task records and their queries and mutations (see the module doc)."""

    # Provided by World.
    lock: threading.RLock
    seed: int
    anchor: int
    users: list[User]
    forbidden: set[str]
    _tasks: dict[str, _Task]
    _ids: dict[str, list[str]]

    def _task(self, task_id: str) -> _Task:  # pragma: no cover - World's
        raise NotImplementedError

    def _follow_changed(self, task: _Task) -> None:  # pragma: no cover - World's
        raise NotImplementedError

    # ------------------------------------------------------------------ state and generation
    def _init_v2(self) -> None:
        #: Tasks that v1 does not know (v1 followers and get task answer 400/1470602).
        self.v2_only: set[str] = set()
        #: User token -> the user index it acts as (others act as DEFAULT_TOKEN_USER).
        self.user_token_owners: dict[str, int] = {}
        app_rng = random.Random(f"{self.seed}:apps")
        #: Other apps that follow some tasks: app id -> display name.
        self.app_names: dict[str, str] = {
            f"cli_{app_rng.getrandbits(64):016x}": name for name in _APP_NAMES[:APP_POOL_SIZE]
        }
        self._v2: dict[str, TaskV2] = {}
        self._tasklists: dict[str, Tasklist] = {}
        self._tasklist_order: list[Cursor] = []  # sorted (created ms, guid)
        self._v2_rng = random.Random(f"{self.seed}:v2")
        self._v2_serial = 100_000
        self._tasklist_rng = random.Random(f"{self.seed}:tasklists:added")
        self._tasklists_added = 0

    def _register_v2(self, task: _Task) -> None:
        """Draw a new task's v2-only attributes from the world's v2 stream (in insert order)."""
        rng = self._v2_rng
        self._v2_serial += rng.randint(1, 40)
        start = None
        if task.due is not None and rng.random() < START_SHARE:
            due_ms = int(task.due["time"]) * 1000
            start = (due_ms - rng.randint(1, 14) * DAY_MS, bool(task.due["is_all_day"]))
        subtasks = 0 if rng.random() < 0.85 else rng.randint(1, 5)
        self._v2[task.id] = TaskV2(f"t{self._v2_serial}", rng.randrange(1000), start, subtasks)

    def _generate_v2(self, tasklists: int | None, v2_only: float, app_followers: float) -> None:
        """Lists, list memberships, app followers and v2-only tasks, each from its own stream.

        ``tasklists`` None means a few dozen for a couple of hundred tasks (tasks // 6, within
        4..48).  Lists 0-4 are pinned so that every world has each kind: 0 a big backlog
        (~60 % of the tasks), 1 archived, 2 without the app (but with the default token
        user), 3 forbidden, 4 without the default token user.
        """
        count = max(4, min(48, len(self._tasks) // 6)) if tasklists is None else tasklists
        list_rng = random.Random(f"{self.seed}:tasklists")
        guids = [self._new_generated_tasklist(i, list_rng) for i in range(count)]
        join_rng = random.Random(f"{self.seed}:tasklists:tasks")
        app_rng = random.Random(f"{self.seed}:app-followers")
        only_rng = random.Random(f"{self.seed}:v2-only")
        apps = list(self.app_names)
        for task_id, task in self._tasks.items():
            chosen: list[str] = []
            if guids and join_rng.random() < BACKLOG_SHARE:
                chosen.append(guids[0])
            extra = min(join_rng.choices(EXTRA_LIST_COUNTS, EXTRA_LIST_WEIGHTS)[0], max(0, len(guids) - 1))
            if extra:
                chosen += [guids[i] for i in join_rng.sample(range(1, len(guids)), extra)]
            for guid in chosen:
                tasklist = self._tasklists[guid]
                self._join(tasklist, task, join_rng.choice(tasklist.sections), keep_sorted=False)
            if app_rng.random() < app_followers:
                self._v2[task_id].app_followers = tuple(app_rng.sample(apps, app_rng.choice((1, 1, 2))))
            if only_rng.random() < v2_only:
                self.v2_only.add(task_id)
        for guid in guids:
            for keys in self._tasklists[guid].keys.values():
                keys.sort()

    def _new_generated_tasklist(self, index: int, rng: random.Random) -> str:
        """List number ``index`` of a generated world (registered, without tasks yet)."""
        n_users = len(self.users)
        owner = rng.randrange(n_users)
        creator = owner if rng.random() < 0.8 else rng.randrange(n_users)
        people = rng.sample(range(n_users), min(rng.randint(1, 8), n_users))
        members = {u: rng.choice(("editor", "viewer")) for u in people if u != owner}
        if rng.random() < TOKEN_USER_SHARE or index == 2:
            members.setdefault(DEFAULT_TOKEN_USER, "viewer")
        if index == 4:
            members.pop(DEFAULT_TOKEN_USER, None)
            if owner == DEFAULT_TOKEN_USER:
                owner = creator = (DEFAULT_TOKEN_USER + 1) % n_users
        members.pop(owner, None)
        chats = [(f"oc_{rng.getrandbits(128):032x}", "viewer")] if rng.random() < 0.2 else []
        app_role: str | None = rng.choice(("viewer", "viewer", "editor"))
        if index == 2 or (index > 4 and rng.random() < NOT_A_MEMBER_SHARE):
            app_role = None
        created = (self.anchor - rng.randint(30 * 86_400, 365 * 86_400)) * 1000 + rng.randrange(1000)
        updated = min(self.anchor * 1000, created + rng.randint(0, 60) * DAY_MS + rng.randrange(DAY_MS))
        archived = index == 1 or (index > 4 and rng.random() < ARCHIVED_SHARE)
        forbidden = index == 3 or (index > 4 and app_role is not None and rng.random() < FORBIDDEN_SHARE)
        tasklist = Tasklist(
            guid=self._fresh_tasklist_guid(rng),
            name=f"{rng.choice(_TEAMS)} {rng.choice(_KINDS)} #{index}",
            creator=creator,
            owner=owner,
            members=members,
            chats=chats,
            app_role=app_role,
            created_ms=created,
            updated_ms=updated,
            archive_ms=rng.randint(updated, self.anchor * 1000) if archived else 0,
            forbidden=forbidden,
            sections=[_guid(rng) for _ in range(rng.randint(1, 3))],
        )
        self._put_tasklist(tasklist)
        return tasklist.guid

    def _fresh_tasklist_guid(self, rng: random.Random) -> str:
        while True:
            guid = _guid(rng)
            if guid not in self._tasklists and guid not in self._tasks:
                return guid

    def _put_tasklist(self, tasklist: Tasklist) -> None:
        self._tasklists[tasklist.guid] = tasklist
        bisect.insort(self._tasklist_order, (tasklist.created_ms, tasklist.guid))

    def _join(self, tasklist: Tasklist, task: _Task, section: str, keep_sorted: bool = True) -> None:
        """Put a task into a list (and the list into the task's lists)."""
        extra = self._v2[task.id]
        key = (extra.created_ms(task), task.id)
        for state in (None, task.complete_time > 0):
            if keep_sorted:
                bisect.insort(tasklist.keys[state], key)
            else:
                tasklist.keys[state].append(key)
        tasklist.section_of[task.id] = section
        extra.tasklists += (tasklist.guid,)

    # ------------------------------------------------------------------ lookups
    def _tasklist(self, guid: str) -> Tasklist:
        try:
            return self._tasklists[guid]
        except KeyError:
            raise TasklistNotFound(guid) from None

    def _readable_tasklist(self, guid: str, caller: Caller) -> Tasklist:
        """The list if the caller may read its tasks; unknown, foreign and forbidden lists raise."""
        tasklist = self._tasklist(guid)
        if tasklist.forbidden or not tasklist.has_member(caller):
            raise TasklistForbidden(guid)
        return tasklist

    def token_user(self, token: str) -> int:
        """The user index a user token acts as."""
        return self.user_token_owners.get(token, DEFAULT_TOKEN_USER)

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
        with self.lock:
            keys = self._tasklist_order
            ids = self._ids[user_id_type]
            out: list[dict[str, Any]] = []
            last: Cursor | None = None
            for i in range(bisect.bisect_right(keys, _key(after)), len(keys)):
                tasklist = self._tasklists[keys[i][1]]
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
        with self.lock:
            keys = self._readable_tasklist(guid, caller).keys[completed]
            lo = bisect.bisect_left(keys, (created_from, "")) if created_from is not None else 0
            lo = max(lo, bisect.bisect_right(keys, _key(after)))
            hi = len(keys) if created_to is None else bisect.bisect_left(keys, (created_to + 1, ""))
            ids = self._ids[user_id_type]
            page = keys[lo : min(hi, lo + limit)]
            tasks, extras = self._tasks, self._v2
            out = [v2_shapes.task_summary(tasks[t], extras[t], ids, stamp, count) for _, t in page]
            return out, (page[-1] if lo + limit < hi else None)

    def v2_task_answer(
        self,
        task_id: str,
        caller: Caller,
        user_id_type: str,
        stamp: Callable[[int], Any],
        count: Callable[[int], Any],
    ) -> dict[str, Any]:
        """The v2 get-task object; raises for unknown and forbidden tasks (v2-only ones are fine)."""
        with self.lock:
            task = self._task(task_id)
            if task_id in self.forbidden:
                raise TaskForbidden(task_id)
            return self._render_v2_task(task, caller, user_id_type, stamp, count)

    def _render_v2_task(
        self,
        task: _Task,
        caller: Caller,
        user_id_type: str,
        stamp: Callable[[int], Any],
        count: Callable[[int], Any],
    ) -> dict[str, Any]:
        extra = self._v2[task.id]
        shown = []  # upstream shows only the lists the caller may read
        for guid in extra.tasklists:
            tasklist = self._tasklists[guid]
            if tasklist.has_member(caller) and not tasklist.forbidden:
                shown.append((guid, tasklist.section_of[task.id]))
        return v2_shapes.task(task, extra, self._ids[user_id_type], self.app_names, shown, stamp, count)

    # ------------------------------------------------------------------ truth for tests
    def tasklist_guids(self) -> list[str]:
        """Every list guid (whoever may see it), in the order the list endpoint uses."""
        with self.lock:
            return [guid for _, guid in self._tasklist_order]

    def visible_tasklists(self, user_index: int | None = None) -> list[str]:
        """Guids the list endpoint returns to the app (None) or to a user, in its order."""
        with self.lock:
            return [g for _, g in self._tasklist_order if self._tasklists[g].has_member(user_index)]

    def find_tasklists(
        self,
        *,
        app_member: bool | None = None,
        forbidden: bool | None = None,
        archived: bool | None = None,
        user_member: int | None = None,
    ) -> list[str]:
        """Guids of the lists with the given traits (None = either), in list-endpoint order."""
        with self.lock:
            out = []
            for _, guid in self._tasklist_order:
                tl = self._tasklists[guid]
                if app_member is not None and (tl.app_role is not None) != app_member:
                    continue
                if forbidden is not None and tl.forbidden != forbidden:
                    continue
                if archived is not None and (tl.archive_ms > 0) != archived:
                    continue
                if user_member is not None and not tl.has_member(user_member):
                    continue
                out.append(guid)
            return out

    def tasklist_tasks(
        self,
        guid: str,
        completed: bool | None = None,
        created_from: int | None = None,
        created_to: int | None = None,
    ) -> list[str]:
        """Task guids of a list in the endpoint's order and filters (ignores permissions)."""
        with self.lock:
            keys = self._tasklist(guid).keys[completed]
            return [
                task_id
                for created, task_id in keys
                if (created_from is None or created >= created_from)
                and (created_to is None or created <= created_to)
            ]

    def tasklists_of(self, task_id: str) -> list[str]:
        """The guids of the lists a task is in (whoever may see them), in joining order."""
        with self.lock:
            self._task(task_id)
            return list(self._v2[task_id].tasklists)

    def tasklist(self, guid: str, user_id_type: str = "open_id", app_id: str = "cli_demo") -> dict[str, Any]:
        """The list object as the list endpoint renders it (ignores permissions)."""
        with self.lock:
            return v2_shapes.tasklist(self._tasklist(guid), self._ids[user_id_type], app_id, str)

    def v2_task(self, task_id: str, user_id_type: str = "open_id", caller: Caller = None) -> dict[str, Any]:
        """The v2 task object as get task renders it for ``caller`` (ignores ``forbidden``)."""
        with self.lock:
            return self._render_v2_task(self._task(task_id), caller, user_id_type, str, int)

    def v2_followers(self, task_id: str, user_id_type: str = "open_id") -> list[tuple[str, str]]:
        """(id, type) of the task's v2 followers: the v1 followers as users, then its apps."""
        with self.lock:
            ids = self._ids[user_id_type]
            users = [(ids[u], "user") for u in self._task(task_id).followers]
            return users + [(app, "app") for app in self._v2[task_id].app_followers]

    def v2_assignees(self, task_id: str, user_id_type: str = "open_id") -> list[str]:
        """User ids of the task's assignees (the v1 collaborators)."""
        with self.lock:
            ids = self._ids[user_id_type]
            return [ids[u] for u in self._task(task_id).collaborators]

    def display_id(self, task_id: str) -> str:
        """The task's short display id (``task_id`` in v2 answers, e.g. ``t104121``)."""
        with self.lock:
            self._task(task_id)
            return self._v2[task_id].display_id

    def created_ms(self, task_id: str) -> int:
        """The task's v2 ``created_at`` (its v1 create_time in ms plus a fixed ms part)."""
        with self.lock:
            return self._v2[task_id].created_ms(self._task(task_id))

    # ------------------------------------------------------------------ mutations
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
        with self.lock:
            rng = self._tasklist_rng
            self._tasklists_added += 1
            n = self._tasklists_added
            owner = rng.randrange(len(self.users)) if owner is None else owner
            if created_ms is None:
                newest = self._tasklist_order[-1][0] if self._tasklist_order else self.anchor * 1000
                created_ms = max(newest, self.anchor * 1000) + 1000
            tasklist = Tasklist(
                guid=self._fresh_tasklist_guid(rng),
                name=name or f"Added list {n}",
                creator=owner,
                owner=owner,
                members={u: "viewer" for u in members if u != owner},
                chats=[],
                app_role=app_role,
                created_ms=created_ms,
                updated_ms=created_ms,
                sections=[_guid(rng)],
            )
            self._put_tasklist(tasklist)
            return tasklist.guid

    def remove_tasklist(self, guid: str) -> None:
        """Delete a list (its guid answers 404 from now on); its tasks stay."""
        with self.lock:
            tasklist = self._tasklist(guid)
            for task_id in tasklist.section_of:
                extra = self._v2[task_id]
                extra.tasklists = tuple(g for g in extra.tasklists if g != guid)
            del self._tasklists[guid]
            self._tasklist_order.remove((tasklist.created_ms, guid))

    def add_task_to_tasklist(self, guid: str, task_id: str, section_guid: str | None = None) -> None:
        """Put a task into a list (default section); ValueError if it is there already."""
        with self.lock:
            tasklist, task = self._tasklist(guid), self._task(task_id)
            if task_id in tasklist.section_of:
                raise ValueError(f"{task_id} is already in {guid}")
            if section_guid is not None and section_guid not in tasklist.sections:
                raise ValueError(f"{section_guid} is not a section of {guid}")
            self._join(tasklist, task, section_guid or tasklist.sections[0])

    def remove_task_from_tasklist(self, guid: str, task_id: str) -> None:
        """Take a task out of a list; ValueError if it is not there."""
        with self.lock:
            tasklist, task = self._tasklist(guid), self._task(task_id)
            if task_id not in tasklist.section_of:
                raise ValueError(f"{task_id} is not in {guid}")
            extra = self._v2[task_id]
            key = (extra.created_ms(task), task_id)
            for state in (None, task.complete_time > 0):
                tasklist.keys[state].remove(key)
            del tasklist.section_of[task_id]
            extra.tasklists = tuple(g for g in extra.tasklists if g != guid)

    def archive_tasklist(self, guid: str, archived: bool = True, when_ms: int | None = None) -> int:
        """Archive a list (``archive_msec`` = ``when_ms``, default its update + 1 s) or unarchive it.

        Returns the new ``archive_msec`` (0 when unarchived).  Archived lists stay listed and readable.
        """
        with self.lock:
            tasklist = self._tasklist(guid)
            if not archived:
                tasklist.archive_ms = 0
            else:
                tasklist.archive_ms = tasklist.updated_ms + 1000 if when_ms is None else int(when_ms)
            return tasklist.archive_ms

    def set_tasklist_forbidden(self, guid: str, forbidden: bool = True) -> None:
        """Keep the list listed but make its tasks answer 403/1470403 (or readable again)."""
        with self.lock:
            self._tasklist(guid).forbidden = forbidden

    def set_tasklist_app_role(self, guid: str, role: str | None) -> None:
        """Make the app a member with ``role`` ("viewer" / "editor"), or no member (None)."""
        with self.lock:
            self._tasklist(guid).app_role = role

    def set_tasklist_member(self, guid: str, user_index: int, role: str | None = "viewer") -> None:
        """Add a user to a list with ``role``, or remove it (None); the owner stays."""
        with self.lock:
            tasklist = self._tasklist(guid)
            if role is None:
                tasklist.members.pop(user_index, None)
            elif user_index != tasklist.owner:
                tasklist.members[user_index] = role

    def add_app_follower(self, task_id: str, app_id: str | None = None) -> str:
        """Make an app follow a task (None = one of ``app_names`` not yet following); returns its id."""
        with self.lock:
            task = self._task(task_id)
            extra = self._v2[task_id]
            following = extra.app_followers
            if app_id is None:
                free = [a for a in self.app_names if a not in following]
                if not free:
                    raise ValueError(f"every known app already follows {task_id}")
                app_id = free[zlib.crc32(task_id.encode()) % len(free)]
            elif app_id in following:
                raise ValueError(f"{app_id} already follows {task_id}")
            extra.app_followers = (*following, app_id)
            self._follow_changed(task)
            return app_id

    def remove_app_follower(self, task_id: str, app_id: str) -> None:
        """Stop an app following a task; ValueError if it does not."""
        with self.lock:
            task = self._task(task_id)
            extra = self._v2[task_id]
            if app_id not in extra.app_followers:
                raise ValueError(f"{app_id} does not follow {task_id}")
            extra.app_followers = tuple(a for a in extra.app_followers if a != app_id)
            self._follow_changed(task)

    def _drop_app_followers(self, task_id: str) -> bool:
        """Forget a task's app followers; whether it had any (caller holds the lock)."""
        extra = self._v2[task_id]
        had = bool(extra.app_followers)
        extra.app_followers = ()
        return had

    def set_v2_only(self, task_id: str, v2_only: bool = True) -> None:
        """Make v1 deny knowing a task (400/1470602) while v2 serves it, or undo that."""
        with self.lock:
            self._task(task_id)
            if v2_only:
                self.v2_only.add(task_id)
            else:
                self.v2_only.discard(task_id)

    def bind_user_token(self, token: str, user_index: int) -> None:
        """Let a user token act as ``user_index`` (others act as DEFAULT_TOKEN_USER)."""
        with self.lock:
            self.users[user_index]  # IndexError for unknown users
            self.user_token_owners[token] = user_index
