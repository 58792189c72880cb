"""The simulated tenant's data (users and tasks): the single source of truth.

The HTTP handlers read it from the server thread while tests mutate it from
theirs, so every public method takes ``self.lock``.  Everything a request needs
is kept precomputed (per-type id tables, per-task follower lists, create-time
indexes), so no request costs O(number of tasks).
"""

from __future__ import annotations

import bisect
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import TaskForbidden, TaskNotFound
from .tasklists import APP_FOLLOWER_SHARE, TasklistsMixin

ID_TYPES: tuple[str, ...] = ("open_id", "union_id", "user_id")
# Fixed so that one seed gives the same world on any day (2026-01-01T00:00:00Z).
DEFAULT_ANCHOR = 1_767_225_600
YEAR_SECONDS = 365 * 86_400
ID_LIST_SHARE = 0.05  # share of followers whose list entry carries an id_list

_VERBS = (
    "Review",
    "Draft",
    "Ship",
    "Fix",
    "Plan",
    "Test",
    "Migrate",
    "Document",
    "Audit",
    "Sync",
)
_OBJECTS = (
    "quarterly report",
    "onboarding guide",
    "billing service",
    "release notes",
    "data model",
    "vendor contract",
    "dashboard",
    "API gateway",
    "hiring plan",
    "customer feedback",
)
_PLATFORMS = (
    (
        '{"zh_cn": "IT 工作台", "en_us": "IT Workspace"}',
        "https://support.example.com/tickets/",
    ),
    (
        '{"zh_cn": "项目管理", "en_us": "Project Hub"}',
        "https://projects.example.com/items/",
    ),
    (
        '{"zh_cn": "客户服务", "en_us": "Service Desk"}',
        "https://desk.example.com/cases/",
    ),
)
_TIMEZONES = ("Asia/Shanghai", "Asia/Singapore", "Europe/London", "America/New_York")


@dataclass(frozen=True, slots=True)
class User:
    """One tenant user with its three stable ids, so tests can map between id types."""

    index: int
    open_id: str
    union_id: str
    user_id: str

    def id_of(self, user_id_type: str) -> str:
        """The user's id of the given type (open_id, union_id or user_id)."""
        if user_id_type not in ID_TYPES:
            raise ValueError(f"unknown user_id_type {user_id_type!r}")
        return str(getattr(self, user_id_type))


@dataclass(slots=True)
class _Task:
    """Internal task record; people are user indexes so every id type renders cheaply."""

    id: str
    summary: str
    description: str
    creator: int
    create_time: int
    update_time: int
    complete_time: int
    due: dict[str, Any] | None
    origin: dict[str, Any]
    extra: str
    custom: str
    source: int
    collaborators: list[int]
    followers: list[int]
    follower_set: set[int]
    id_lists: dict[int, list[int]]


def _uuid4(rng: random.Random) -> str:
    """A lowercase UUID4-form string drawn from ``rng`` (deterministic per seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _follower_count(rng: random.Random, index: int) -> int:
    """A realistic follower count; tasks 1-3 are pinned so even tiny worlds page."""
    r = rng.random()
    if r < 0.10:
        n = 0
    elif r < 0.85:
        n = min(10, 1 + int(rng.expovariate(0.45)))
    elif r < 0.95:
        n = rng.randint(11, 50)
    else:
        n = rng.randint(51, 180)
    pinned = {1: 0, 2: 101 + n % 80, 3: 51 + n % 50}
    return pinned.get(index, n)


class World(TasklistsMixin):
    """Users, tasks and their followers; mutable from tests while the server runs.

    The task v2 side (task lists, members, v2-only tasks) comes from ``TasklistsMixin``.
    """

    #: Whether add/remove follower bumps the task's update_time (undocumented upstream).
    bump_update_time_on_follow_change: bool = False

    def __init__(self, users: list[User], *, seed: int = 0, anchor: int = DEFAULT_ANCHOR) -> None:
        if not users:
            raise ValueError("a world needs at least one user")
        self.lock = threading.RLock()
        self.seed = seed
        self.anchor = anchor
        self.users: list[User] = users
        self.forbidden: set[str] = set()
        #: Task ids the demo can feed in that the API rejects with 1470602: even positions
        #: are well-formed but unknown, odd positions are malformed.
        self.invalid_ids: list[str] = []
        self._ids: dict[str, list[str]] = {t: [u.id_of(t) for u in users] for t in ID_TYPES}
        self._index: dict[str, dict[str, int]] = {
            t: {v: i for i, v in enumerate(vals)} for t, vals in self._ids.items()
        }
        self._tasks: dict[str, _Task] = {}
        # Sorted (create_time, id) keys for the list endpoint: all / completed / open.
        self._order: dict[bool | None, list[tuple[int, str]]] = {
            None: [],
            True: [],
            False: [],
        }
        self._id_rng = random.Random(seed)
        self._mutation_rng = random.Random(f"{seed}:mutations")
        self._added = 0
        self._fixed_follower_count: int | None = None
        self._init_v2()

    # ------------------------------------------------------------------ generation
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
        app_followers: float = APP_FOLLOWER_SHARE,
    ) -> World:
        """Build a world that depends only on the arguments (never on the clock).

        Task ids come from ``random.Random(seed)`` and each task's attributes from its
        own derived generator, so ``generate(200, s)`` is a prefix of ``generate(1000, s)``
        (given the same ``users``).  ``forbidden`` tasks are picked among the generated
        ones; ``invalid`` extra ids go to ``world.invalid_ids``.  ``anchor`` is "now" for
        the generated timestamps (default: 2026-01-01, create times fall in the year before).
        ``followers_per_task`` gives every task exactly that many followers instead of the
        realistic mix (the benchmark's uniform million-row world).
        ``tasklists``, ``v2_only`` and ``app_followers`` shape the task v2 side (see
        ``TasklistsMixin._generate_v2``); they never change what v1 shows of the tasks,
        except that ``v2_only`` tasks are unknown to v1.
        """
        world = cls(
            _make_users(users, seed),
            seed=seed,
            anchor=DEFAULT_ANCHOR if anchor is None else anchor,
        )
        world._fixed_follower_count = followers_per_task
        with world.lock:
            for i in range(tasks):
                world._insert(world._generated_task(i))
            candidates = [i for i in range(tasks) if i not in (2, 3)]
            if len(candidates) < forbidden:
                candidates = list(range(tasks))
            ids = world.task_ids()
            for i in random.Random(f"{seed}:forbidden").sample(candidates, min(forbidden, len(candidates))):
                world.forbidden.add(ids[i])
            world.invalid_ids = world._make_invalid_ids(invalid)
            world._generate_v2(tasklists, v2_only, app_followers)
        return world

    def _new_task_id(self) -> str:
        """Next id from the seed's id stream, skipping (astronomically unlikely) repeats."""
        while True:
            task_id = _uuid4(self._id_rng)
            if task_id not in self._tasks:
                return task_id

    def _generated_task(self, index: int) -> _Task:
        """Task number ``index`` of a generated world, drawn from its own generator."""
        task_id = self._new_task_id()
        rng = random.Random(f"{self.seed}:task:{index}")
        n_users = len(self.users)
        create = self.anchor - rng.randint(3_600, YEAR_SECONDS)
        update = min(self.anchor, create + int(rng.expovariate(1 / (5 * 86_400))))
        complete = rng.randint(create, update) if rng.random() < 0.3 else 0
        count = _follower_count(rng, index)
        if self._fixed_follower_count is not None:
            count = self._fixed_follower_count
        followers = rng.sample(range(n_users), min(count, n_users))
        id_lists = {
            u: rng.sample(range(n_users), min(rng.randint(1, 3), n_users))
            for u in followers
            if rng.random() < ID_LIST_SHARE
        }
        due: dict[str, Any] | None = None
        if rng.random() < 0.7:
            all_day = rng.random() < 0.3
            due_time = create + rng.randint(1, 60) * 86_400
            due = {
                "time": str(due_time - due_time % 86_400 if all_day else due_time),
                "timezone": rng.choice(_TIMEZONES),
                "is_all_day": all_day,
            }
        platform, url = _PLATFORMS[rng.randrange(len(_PLATFORMS))]
        verb, obj = rng.choice(_VERBS), rng.choice(_OBJECTS)
        n_collab = rng.choice((0, 1, 1, 1, 2, 3))
        return _Task(
            id=task_id,
            summary=f"{verb} {obj} #{index}",
            description=f"{verb} the {obj}; generated task {index} (seed {self.seed}).",
            creator=rng.randrange(n_users),
            create_time=create,
            update_time=update,
            complete_time=complete,
            due=due,
            origin={
                "platform_i18n_name": platform,
                "href": {"url": f"{url}{index}", "title": f"{obj.title()} {index}"},
            },
            extra=f"sim:{index}" if rng.random() < 0.5 else "",
            custom="",
            source=rng.choice((1, 2, 3, 6)),
            collaborators=rng.sample(range(n_users), min(n_collab, n_users)),
            followers=followers,
            follower_set=set(followers),
            id_lists=id_lists,
        )

    def _make_invalid_ids(self, count: int) -> list[str]:
        """Ids answered with 1470602: alternately unknown UUIDs and malformed strings."""
        rng = random.Random(f"{self.seed}:invalid")
        out: list[str] = []
        for k in range(count):
            well_formed = _uuid4(rng)
            if k % 2 == 0:
                while well_formed in self._tasks:
                    well_formed = _uuid4(rng)
                out.append(well_formed)
            else:
                forms = (
                    f"not-a-task-{k}",
                    well_formed.replace("-", ""),
                    well_formed.upper(),
                    f"{well_formed}x",
                )
                out.append(forms[(k // 2) % len(forms)])
        return out

    def _insert(self, task: _Task) -> None:
        """Register a task in the id map and the sorted create-time indexes."""
        self._tasks[task.id] = task
        key = (task.create_time, task.id)
        bisect.insort(self._order[None], key)
        bisect.insort(self._order[task.complete_time > 0], key)
        self._register_v2(task)

    # ------------------------------------------------------------------ reads
    def _task(self, task_id: str) -> _Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def _readable(self, task_id: str) -> _Task:
        """The task as the app sees it through v1: unknown, v2-only and forbidden ids raise."""
        if task_id in self.v2_only:
            raise TaskNotFound(task_id)
        task = self._task(task_id)
        if task_id in self.forbidden:
            raise TaskForbidden(task_id)
        return task

    def task_ids(self) -> list[str]:
        """Every task id (forbidden ones included), in creation order."""
        with self.lock:
            return list(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def followers(self, task_id: str, user_id_type: str = "open_id") -> list[str]:
        """The task's current followers as ids of the given type, in page order."""
        with self.lock:
            ids = self._ids[user_id_type]
            return [ids[u] for u in self._task(task_id).followers]

    def follower_id_lists(self, task_id: str, user_id_type: str = "open_id") -> dict[str, list[str]]:
        """Follower id -> its id_list, only for the followers that have one."""
        with self.lock:
            ids = self._ids[user_id_type]
            return {ids[u]: [ids[x] for x in lst] for u, lst in self._task(task_id).id_lists.items()}

    def task(self, task_id: str, user_id_type: str = "open_id") -> dict[str, Any]:
        """The task object exactly as the get-task endpoint renders it (ignores forbidden)."""
        with self.lock:
            return self._render(self._task(task_id), self._ids[user_id_type])

    def user(self, user_id: str, user_id_type: str = "open_id") -> User:
        """The user behind an id of any type (for comparing answers across id types)."""
        return self.users[self._index[user_id_type][user_id]]

    def convert_id(self, user_id: str, from_type: str, to_type: str) -> str:
        """Map one user's id between id types."""
        return self._ids[to_type][self._index[from_type][user_id]]

    def _render(self, task: _Task, ids: list[str]) -> dict[str, Any]:
        """Render a task in the API's shape with people as ids of one type."""
        out: dict[str, Any] = {
            "id": task.id,
            "summary": task.summary,
            "description": task.description,
            "creator_id": ids[task.creator],
            "create_time": str(task.create_time),
            "update_time": str(task.update_time),
            "complete_time": str(task.complete_time),
            "origin": {
                "platform_i18n_name": task.origin["platform_i18n_name"],
                "href": dict(task.origin["href"]),
            },
            "extra": task.extra,
            "custom": task.custom,
            "source": task.source,
            "followers": [{"id": ids[u]} for u in task.followers],
            "collaborators": [{"id": ids[u]} for u in task.collaborators],
            "repeat_rule": "",
            "rich_summary": task.summary,
            "rich_description": task.description,
        }
        if task.due is not None:
            out["due"] = dict(task.due)
        return out

    def follower_page(
        self, task_id: str, offset: int, limit: int, user_id_type: str
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the follower list (items, total count); raises for unreadable tasks."""
        with self.lock:
            task = self._readable(task_id)
            ids = self._ids[user_id_type]
            id_lists = task.id_lists
            items: list[dict[str, Any]] = []
            for u in task.followers[offset : offset + limit]:
                extra = id_lists.get(u)
                if extra is None:
                    items.append({"id": ids[u]})
                else:
                    items.append({"id": ids[u], "id_list": [ids[x] for x in extra]})
            return items, len(task.followers)

    def get_task(self, task_id: str, user_id_type: str) -> dict[str, Any]:
        """The get-task answer; raises for unknown or forbidden tasks."""
        with self.lock:
            return self._render(self._readable(task_id), self._ids[user_id_type])

    def list_tasks(
        self,
        *,
        limit: int,
        user_id_type: str,
        after: tuple[int, str] | None = None,
        start: int | None = None,
        end: int | None = None,
        completed: bool | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
        """A page of readable tasks by (create_time, id), after a cursor, within [start, end].

        Returns the rendered tasks and the cursor of the last one when more follow
        (None otherwise).  Cost is O(log n + page + forbidden and v2-only tasks skipped).
        """
        with self.lock:
            keys = self._order[completed]
            lo = bisect.bisect_left(keys, (start, "")) if start is not None else 0
            if after is not None:
                lo = max(lo, bisect.bisect_right(keys, after))
            ids = self._ids[user_id_type]
            out: list[dict[str, Any]] = []
            last: tuple[int, str] | None = None
            for i in range(lo, len(keys)):
                key = keys[i]
                if end is not None and key[0] > end:
                    break
                if key[1] in self.forbidden or key[1] in self.v2_only:
                    continue
                if len(out) == limit:
                    return out, last
                out.append(self._render(self._tasks[key[1]], ids))
                last = key
            return out, None

    # ------------------------------------------------------------------ mutations
    def _follow_changed(self, task: _Task) -> None:
        if self.bump_update_time_on_follow_change:
            task.update_time = max(int(time.time()), task.update_time + 1)

    def add_follower(self, task_id: str, user_index: int | None = None) -> str:
        """Add a user not yet following (``None`` = a deterministic pick); returns its open_id."""
        with self.lock:
            task = self._task(task_id)
            if user_index is None:
                free = [i for i in range(len(self.users)) if i not in task.follower_set]
                if not free:
                    raise ValueError(f"every user already follows {task_id}")
                user_index = self._mutation_rng.choice(free)
            elif user_index in task.follower_set:
                raise ValueError(f"user {user_index} already follows {task_id}")
            user = self.users[user_index]
            task.followers.append(user_index)
            task.follower_set.add(user_index)
            self._follow_changed(task)
            return user.open_id

    def remove_follower(self, task_id: str, open_id: str) -> None:
        """Remove one follower (by open_id); ValueError if it does not follow the task."""
        with self.lock:
            task = self._task(task_id)
            u = self._index["open_id"].get(open_id)
            if u is None or u not in task.follower_set:
                raise ValueError(f"{open_id} does not follow {task_id}")
            task.followers.remove(u)
            task.follower_set.discard(u)
            task.id_lists.pop(u, None)
            self._follow_changed(task)

    def remove_all_followers(self, task_id: str) -> None:
        """Leave the task with no followers (app followers, which only v2 shows, included)."""
        with self.lock:
            task = self._task(task_id)
            had_apps = self._drop_app_followers(task_id)
            had = bool(task.followers) or had_apps
            task.followers.clear()
            task.follower_set.clear()
            task.id_lists.clear()
            if had:
                self._follow_changed(task)

    def add_task(self, followers: int = 3, create_time: int | None = None) -> str:
        """Create an open task with ``followers`` random followers; returns its id.

        ``create_time`` defaults to the wall clock (never before the world's anchor).
        """
        with self.lock:
            task_id = self._new_task_id()
            self._added += 1
            n = self._added
            created = max(int(time.time()), self.anchor) if create_time is None else int(create_time)
            rng = self._mutation_rng
            chosen = rng.sample(range(len(self.users)), min(followers, len(self.users)))
            self._insert(
                _Task(
                    id=task_id,
                    summary=f"Added task {n}",
                    description=f"Task added at runtime ({n}).",
                    creator=rng.randrange(len(self.users)),
                    create_time=created,
                    update_time=created,
                    complete_time=0,
                    due=None,
                    origin={
                        "platform_i18n_name": _PLATFORMS[0][0],
                        "href": {"url": "", "title": ""},
                    },
                    extra="",
                    custom="",
                    source=1,
                    collaborators=[],
                    followers=chosen,
                    follower_set=set(chosen),
                    id_lists={},
                )
            )
            return task_id

    def touch(self, task_id: str, when: int | None = None) -> int:
        """Set update_time to ``when`` (default: now, and always later than before); returns it."""
        with self.lock:
            task = self._task(task_id)
            task.update_time = max(int(time.time()), task.update_time + 1) if when is None else int(when)
            return task.update_time

    def set_forbidden(self, task_id: str, forbidden: bool = True) -> None:
        """Make an existing task unreadable for the app (400/1470432) or readable again."""
        with self.lock:
            self._task(task_id)
            if forbidden:
                self.forbidden.add(task_id)
            else:
                self.forbidden.discard(task_id)


def _make_users(count: int, seed: int) -> list[User]:
    """``count`` users with unique ids of all three types, from the seed alone."""
    rng = random.Random(f"{seed}:users")
    seen: set[str] = set()
    users: list[User] = []

    def fresh(prefix: str, bits: int) -> str:
        while True:
            value = f"{prefix}{rng.getrandbits(bits):0{bits // 4}x}"
            if value not in seen:
                seen.add(value)
                return value

    for i in range(count):
        users.append(User(i, fresh("ou_", 128), fresh("on_", 128), fresh("", 32)))
    return users
