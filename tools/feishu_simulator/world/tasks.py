"""The v1 task store: task records, their followers, the create-time index, who may read what.

Holds what task v1 shows (and what v2 shares with it: a v2 guid is the v1 task id, v2 user
followers are the v1 followers): one ``TaskRecord`` per task, the sorted (create_time, id)
keys the list endpoint walks (all, completed, open), the tasks the app may not read
(``forbidden``: 1470432), the tasks v1 does not know although v2 serves them (``v2_only``:
1470602), and ids that were never tasks (``invalid_ids``).  Every request is O(log n + page).

Reads hold the world's lock; each public mutator goes through the change feed and notes one
change.  The building blocks that ``World`` composes into its own mutators (``insert``,
``delete``, ``clear_followers``, the ``draw_*`` factories) note nothing: the World mutator
that calls them notes its one change.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from typing import Any

from ..errors import TaskForbidden, TaskNotFound
from . import seeded, v1_shapes
from .changes import ChangeFeed, ChangeKind
from .people import People
from .records import Cursor, TaskRecord


class TaskStore:
    """The tasks as v1 shows them, and the seeded streams that make new ones."""

    def __init__(
        self, people: People, lock: threading.RLock, feed: ChangeFeed, *, seed: int, anchor: int
    ) -> None:
        self.people = people
        self.seed = seed
        self.anchor = anchor
        self._lock = lock
        self._feed = feed
        #: Whether a follower change bumps the task's update_time (undocumented upstream).
        self.bump_update_time_on_follow_change = False
        #: Tasks the app may not read (v1 answers 400/1470432, v2 403/1470403).
        self.forbidden: set[str] = set()
        #: Tasks that v1 does not know (v1 followers and get task answer 400/1470602).
        self.v2_only: set[str] = set()
        #: Task ids the demo can feed in that the API rejects with 1470602: even positions
        #: are well-formed but unknown, odd positions are malformed.
        self.invalid_ids: list[str] = []
        self._records: dict[str, TaskRecord] = {}
        # Sorted (create_time, id) keys for the list endpoint: all / completed / open.
        self._order: dict[bool | None, list[Cursor]] = {None: [], True: [], False: []}
        self._id_rng = random.Random(seed)
        self._mutation_rng = random.Random(f"{seed}:mutations")
        self._added = 0

    # -------------------------------------------------------- building blocks (the caller holds the lock)
    def new_task_id(self) -> str:
        """Next id from the seed's id stream, skipping (astronomically unlikely) repeats."""
        while True:
            task_id = seeded.uuid4(self._id_rng)
            if task_id not in self._records:
                return task_id

    def draw_generated_task(self, index: int, followers_per_task: int | None) -> TaskRecord:
        """Task number ``index`` of a generated world (not inserted yet)."""
        return seeded.generated_task(
            self.new_task_id(),
            index,
            seed=self.seed,
            anchor=self.anchor,
            n_users=len(self.people),
            followers_per_task=followers_per_task,
        )

    def draw_added_task(self, followers: int, create_time: int | None) -> TaskRecord:
        """A new open task with ``followers`` random followers, from the mutation stream (not inserted)."""
        task_id = self.new_task_id()
        self._added += 1
        created = max(int(time.time()), self.anchor) if create_time is None else int(create_time)
        n_users = len(self.people)
        chosen = self._mutation_rng.sample(range(n_users), min(followers, n_users))
        creator = self._mutation_rng.randrange(n_users)
        return seeded.added_task(task_id, self._added, created, chosen, creator)

    def insert(self, task: TaskRecord, keep_sorted: bool = True) -> None:
        """Register a task in the id map and the create-time indexes.

        ``keep_sorted=False`` appends to the indexes, for a world being generated: one insort per
        task moves half the index each time (quadratic: minutes at a million tasks), one
        ``sort_indexes`` at the end does not.
        """
        self._records[task.id] = task
        key = (task.create_time, task.id)
        for state in (None, task.complete_time > 0):
            if keep_sorted:
                bisect.insort(self._order[state], key)
            else:
                self._order[state].append(key)

    def sort_indexes(self) -> None:
        """Sort the create-time indexes after inserts with ``keep_sorted=False``."""
        for keys in self._order.values():
            keys.sort()

    def delete(self, task_id: str) -> TaskRecord:
        """Forget a task everywhere in the store; returns its record."""
        task = self.record(task_id)
        key = (task.create_time, task_id)
        for state in (None, task.complete_time > 0):
            keys = self._order[state]
            del keys[bisect.bisect_left(keys, key)]
        del self._records[task_id]
        self.forbidden.discard(task_id)
        self.v2_only.discard(task_id)
        return task

    def clear_followers(self, task_id: str) -> list[int]:
        """Remove every user follower; returns the user indexes removed, in page order."""
        task = self.record(task_id)
        removed = list(task.followers)
        task.followers.clear()
        task.follower_set.clear()
        task.id_lists.clear()
        return removed

    def follow_changed(self, task: TaskRecord) -> None:
        """What a follower change does to the task itself (see ``bump_update_time_on_follow_change``)."""
        if self.bump_update_time_on_follow_change:
            task.update_time = max(int(time.time()), task.update_time + 1)

    def pick_forbidden(self, count: int) -> None:
        """Make ``count`` generated tasks unreadable for the app (seeded)."""
        ids = list(self._records)
        self.forbidden.update(ids[i] for i in seeded.forbidden_indexes(self.seed, len(ids), count))

    def pick_v2_only(self, share: float) -> None:
        """Hide about ``share`` of the tasks from v1 (seeded)."""
        rng = random.Random(f"{self.seed}:v2-only")
        self.v2_only.update(task_id for task_id in self._records if rng.random() < share)

    # ------------------------------------------------------------------ reads
    def record(self, task_id: str) -> TaskRecord:
        """The task's record (mutable in place); TaskNotFound for an unknown id."""
        try:
            return self._records[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def readable(self, task_id: str) -> TaskRecord:
        """The task as the app sees it through v1: unknown, v2-only and forbidden ids raise."""
        if task_id in self.v2_only:
            raise TaskNotFound(task_id)
        task = self.record(task_id)
        if task_id in self.forbidden:
            raise TaskForbidden(task_id)
        return task

    def task_ids(self) -> list[str]:
        """Every task id (forbidden ones included), in creation order."""
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._records

    def followers(self, task_id: str, user_id_type: str = "open_id") -> list[str]:
        """The task's current followers as ids of the given type, in page order."""
        with self._lock:
            ids = self.people.ids(user_id_type)
            return [ids[u] for u in self.record(task_id).followers]

    def follower_id_lists(self, task_id: str, user_id_type: str = "open_id") -> dict[str, list[str]]:
        """Follower id -> its id_list, only for the followers that have one."""
        with self._lock:
            ids = self.people.ids(user_id_type)
            return {ids[u]: [ids[x] for x in lst] for u, lst in self.record(task_id).id_lists.items()}

    def task(self, task_id: str, user_id_type: str = "open_id") -> dict[str, Any]:
        """The task object exactly as the get-task endpoint renders it (ignores forbidden)."""
        with self._lock:
            return v1_shapes.task(self.record(task_id), self.people.ids(user_id_type))

    def follower_page(
        self, task_id: str, offset: int, limit: int, user_id_type: str
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the follower list (items, total count); raises for unreadable tasks."""
        with self._lock:
            task = self.readable(task_id)
            items = v1_shapes.follower_items(task, offset, limit, self.people.ids(user_id_type))
            return items, len(task.followers)

    def get_task(self, task_id: str, user_id_type: str) -> dict[str, Any]:
        """The get-task answer; raises for unknown, v2-only or forbidden tasks."""
        with self._lock:
            return v1_shapes.task(self.readable(task_id), self.people.ids(user_id_type))

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
        """A page of readable tasks by (create_time, id), after a cursor, within [start, end].

        Returns the rendered tasks and the cursor of the last one when more follow
        (None otherwise).  Cost is O(log n + page + forbidden and v2-only tasks skipped).
        """
        with self._lock:
            keys = self._order[completed]
            lo = bisect.bisect_left(keys, (start, "")) if start is not None else 0
            if after is not None:
                lo = max(lo, bisect.bisect_right(keys, after))
            ids = self.people.ids(user_id_type)
            out: list[dict[str, Any]] = []
            last: Cursor | None = None
            for i in range(lo, len(keys)):  # not keys[lo:]: that copies the rest of the index
                key = keys[i]
                if end is not None and key[0] > end:
                    break
                if key[1] in self.forbidden or key[1] in self.v2_only:
                    continue
                if len(out) == limit:
                    return out, last
                out.append(v1_shapes.task(self._records[key[1]], ids))
                last = key
            return out, None

    # ------------------------------------------------------------------ mutators (one change each)
    def add_follower(self, task_id: str, user_index: int | None = None) -> str:
        """Add a user not yet following (``None`` = a deterministic pick); returns its open_id."""
        with self._feed.mutation() as note:
            task = self.record(task_id)
            if user_index is None:
                free = [i for i in range(len(self.people)) if i not in task.follower_set]
                if not free:
                    raise ValueError(f"every user already follows {task_id}")
                user_index = self._mutation_rng.choice(free)
            elif user_index in task.follower_set:
                raise ValueError(f"user {user_index} already follows {task_id}")
            open_id = self.people.users[user_index].open_id
            task.followers.append(user_index)
            task.follower_set.add(user_index)
            self.follow_changed(task)
            note(ChangeKind.FOLLOWER_ADDED, task_id, followers=((open_id, "user"),))
            return open_id

    def remove_follower(self, task_id: str, open_id: str) -> None:
        """Remove one follower (by open_id); ValueError if it does not follow the task."""
        with self._feed.mutation() as note:
            task = self.record(task_id)
            u = self.people.index_of(open_id, "open_id")
            if u is None or u not in task.follower_set:
                raise ValueError(f"{open_id} does not follow {task_id}")
            task.followers.remove(u)
            task.follower_set.discard(u)
            task.id_lists.pop(u, None)
            self.follow_changed(task)
            note(ChangeKind.FOLLOWER_REMOVED, task_id, followers=((open_id, "user"),))

    def touch(self, task_id: str, when: int | None = None) -> int:
        """Set update_time to ``when`` (default: now, and always later than before); returns it."""
        with self._feed.mutation() as note:
            task = self.record(task_id)
            stamp = max(int(time.time()), task.update_time + 1) if when is None else int(when)
            if stamp != task.update_time:
                task.update_time = stamp
                note(ChangeKind.TASK_UPDATED, task_id, attribute="update_time")
            return stamp

    def set_forbidden(self, task_id: str, forbidden: bool = True) -> None:
        """Make an existing task unreadable for the app (400/1470432) or readable again."""
        self._flag(self.forbidden, task_id, forbidden, "forbidden")

    def set_v2_only(self, task_id: str, v2_only: bool = True) -> None:
        """Make v1 deny knowing a task (400/1470602) while v2 serves it, or undo that."""
        self._flag(self.v2_only, task_id, v2_only, "v2_only")

    def _flag(self, flagged: set[str], task_id: str, on: bool, attribute: str) -> None:
        """Put an existing task into ``flagged`` or take it out: an access change."""
        with self._feed.mutation() as note:
            self.record(task_id)
            if (task_id in flagged) == on:
                return
            if on:
                flagged.add(task_id)
            else:
                flagged.discard(task_id)
            note(ChangeKind.TASK_ACCESS_CHANGED, task_id, attribute=attribute)
