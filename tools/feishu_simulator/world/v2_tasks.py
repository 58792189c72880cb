"""What task v2 shows of each task beyond its v1 record, and the apps that follow tasks.

v2 reads the same tasks as v1 (``TaskStore``, given by constructor): v2 user followers are the
v1 followers, v2 assignees the v1 collaborators (the v2 overview says v1 called assignees
"collaborators").  This part adds per task a short display id, a millisecond part for the v2
timestamps, a start date, a subtask count, and the app followers that only v2 shows.

Reads hold the world's lock; ``add_app_follower`` and ``remove_app_follower`` go through the
change feed.  ``register``, ``forget`` and ``clear_app_followers`` are building blocks of
``World``'s mutators and note nothing themselves.
"""

from __future__ import annotations

import random
import threading
import zlib
from collections.abc import Callable
from typing import Any

from ..errors import TaskNotFound
from . import seeded, v2_shapes
from .changes import ChangeFeed, ChangeKind
from .records import TaskRecord, TaskV2
from .tasks import TaskStore

START_SHARE = 0.4  # tasks with a due that also have a start


class V2Tasks:
    """Each task's v2-only attributes, drawn from the world's v2 stream in insert order."""

    def __init__(self, tasks: TaskStore, lock: threading.RLock, feed: ChangeFeed, *, seed: int) -> None:
        self.tasks = tasks
        self.seed = seed
        self._lock = lock
        self._feed = feed
        #: Other apps that follow some tasks: app id -> display name.
        self.app_names: dict[str, str] = seeded.app_names(seed)
        self._extras: dict[str, TaskV2] = {}
        self._rng = random.Random(f"{seed}:v2")
        self._serial = 100_000

    # -------------------------------------------------------- building blocks (the caller holds the lock)
    def register(self, task: TaskRecord) -> None:
        """Draw a new task's v2 attributes from the v2 stream."""
        rng = self._rng
        self._serial += rng.randint(1, 40)
        start = None
        if task.due is not None and rng.random() < START_SHARE:
            due_ms = int(task.due["time"]) * 1000
            start = (due_ms - rng.randint(1, 14) * seeded.DAY_MS, bool(task.due["is_all_day"]))
        subtasks = 0 if rng.random() < 0.85 else rng.randint(1, 5)
        self._extras[task.id] = TaskV2(f"t{self._serial}", rng.randrange(1000), start, subtasks)

    def forget(self, task_id: str) -> None:
        """Drop a deleted task's v2 attributes."""
        del self._extras[task_id]

    def clear_app_followers(self, task_id: str) -> tuple[str, ...]:
        """Forget a task's app followers; returns the app ids removed."""
        extra = self.extras(task_id)
        removed, extra.app_followers = extra.app_followers, ()
        return removed

    def pick_app_followers(self, share: float) -> None:
        """Give about ``share`` of the tasks one or two app followers (seeded)."""
        rng = random.Random(f"{self.seed}:app-followers")
        apps = list(self.app_names)
        for extra in self._extras.values():
            if rng.random() < share:
                extra.app_followers = tuple(rng.sample(apps, rng.choice((1, 1, 2))))

    def extras(self, task_id: str) -> TaskV2:
        """The task's v2 attributes; TaskNotFound for an unknown id."""
        try:
            return self._extras[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def render(
        self,
        task_id: str,
        tasklists: list[tuple[str, str]],
        user_id_type: str,
        stamp: Callable[[int], Any],
        count: Callable[[int], Any],
    ) -> dict[str, Any]:
        """The v2 get-task object, showing the given (list guid, section guid) pairs."""
        ids = self.tasks.people.ids(user_id_type)
        task = self.tasks.record(task_id)
        return v2_shapes.task(task, self.extras(task_id), ids, self.app_names, tasklists, stamp, count)

    # ------------------------------------------------------------------ reads
    def display_id(self, task_id: str) -> str:
        """The task's short display id (``task_id`` in v2 answers, e.g. ``t104121``)."""
        with self._lock:
            return self.extras(task_id).display_id

    def created_ms(self, task_id: str) -> int:
        """The task's v2 ``created_at`` (its v1 create_time in ms plus a fixed ms part)."""
        with self._lock:
            return self.extras(task_id).created_ms(self.tasks.record(task_id))

    def v2_followers(self, task_id: str, user_id_type: str = "open_id") -> list[tuple[str, str]]:
        """(id, type) of the task's v2 followers: the v1 followers as users, then its apps."""
        with self._lock:
            users = [(user, "user") for user in self.tasks.followers(task_id, user_id_type)]
            return users + [(app, "app") for app in self.extras(task_id).app_followers]

    def v2_assignees(self, task_id: str, user_id_type: str = "open_id") -> list[str]:
        """User ids of the task's assignees (the v1 collaborators)."""
        with self._lock:
            ids = self.tasks.people.ids(user_id_type)
            return [ids[u] for u in self.tasks.record(task_id).collaborators]

    # ------------------------------------------------------------------ mutators (one change each)
    def add_app_follower(self, task_id: str, app_id: str | None = None) -> str:
        """Make an app follow a task (None = one of ``app_names`` not yet following); returns its id."""
        with self._feed.mutation() as note:
            task = self.tasks.record(task_id)
            extra = self.extras(task_id)
            following = extra.app_followers
            if app_id is None:
                free = [a for a in self.app_names if a not in following]
                if not free:
                    raise ValueError(f"every known app already follows {task_id}")
                app_id = free[zlib.crc32(task_id.encode()) % len(free)]
            elif app_id in following:
                raise ValueError(f"{app_id} already follows {task_id}")
            extra.app_followers = (*following, app_id)
            self.tasks.follow_changed(task)
            note(ChangeKind.FOLLOWER_ADDED, task_id, followers=((app_id, "app"),))
            return app_id

    def remove_app_follower(self, task_id: str, app_id: str) -> None:
        """Stop an app following a task; ValueError if it does not."""
        with self._feed.mutation() as note:
            task = self.tasks.record(task_id)
            extra = self.extras(task_id)
            if app_id not in extra.app_followers:
                raise ValueError(f"{app_id} does not follow {task_id}")
            extra.app_followers = tuple(a for a in extra.app_followers if a != app_id)
            self.tasks.follow_changed(task)
            note(ChangeKind.FOLLOWER_REMOVED, task_id, followers=((app_id, "app"),))
