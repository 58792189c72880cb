"""Every change made to a world, announced to its subscribers: the hook for events and tenants.

Each public mutator of the world's parts runs inside ``ChangeFeed.mutation()`` and notes one
``Change`` there (a mutation that changes nothing notes none).  Subscribers
(``World.subscribe``) get the changes after the mutation is complete, so the simulator's
coming Feishu events are one subscriber and nothing else in the world has to know about them.

Threading rule:

- A change is noted while its mutator holds the world's lock, and numbered then (``seq``
  counts up in the order the mutations happened).
- It is delivered on the mutating thread after that thread's outermost mutation has released
  the lock, so a subscriber may read the world or mutate it (its own changes are delivered
  after, in turn).  A caller that holds ``world.lock`` around a mutator itself gets the
  delivery under its own lock: the feed cannot release a lock it does not own.
- Mutators on different threads deliver independently: a subscriber must be thread-safe, and
  order by ``seq`` where order matters.  Subscribers should only record: an exception of one
  reaches the mutator's caller (after every subscriber got every change; the change stands).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum


class ChangeKind(StrEnum):
    """What happened; the ``*_UPDATED`` and access kinds say which in ``Change.attribute``."""

    TASK_CREATED = "task_created"
    TASK_DELETED = "task_deleted"
    TASK_UPDATED = "task_updated"  # attribute "update_time"
    TASK_ACCESS_CHANGED = "task_access_changed"  # attribute "forbidden" or "v2_only"
    FOLLOWER_ADDED = "follower_added"
    FOLLOWER_REMOVED = "follower_removed"
    FOLLOWERS_CLEARED = "followers_cleared"
    TASK_ADDED_TO_TASKLIST = "task_added_to_tasklist"
    TASK_REMOVED_FROM_TASKLIST = "task_removed_from_tasklist"
    TASKLIST_CREATED = "tasklist_created"
    TASKLIST_DELETED = "tasklist_deleted"
    TASKLIST_UPDATED = "tasklist_updated"  # attribute "archive_ms", "forbidden", "app_role" or "members"
    USER_TOKEN_BOUND = "user_token_bound"


#: A follower as changes name it: (id, "user" | "app"); users by open_id, apps by app id.
Follower = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Change:
    """One change to the world, as its subscribers receive it."""

    kind: ChangeKind
    task_id: str | None  # the task changed (None for list-only and token changes)
    at_ms: int  # wall-clock Unix milliseconds when it was made
    seq: int  # 1, 2, ... per world, in the order the changes were made
    tasklist_guid: str | None = None
    followers: tuple[Follower, ...] = ()  # the follows added or removed
    attribute: str = ""  # what an update or access change changed
    user_index: int | None = None  # the list member or token user concerned


Subscriber = Callable[[Change], None]


class Note:
    """What a mutator calls to record its change (numbered and stamped by the feed)."""

    def __init__(self, feed: ChangeFeed, pending: list[Change]) -> None:
        self._feed = feed
        self._pending = pending

    def __call__(
        self,
        kind: ChangeKind,
        task_id: str | None = None,
        *,
        tasklist_guid: str | None = None,
        followers: tuple[Follower, ...] = (),
        attribute: str = "",
        user_index: int | None = None,
    ) -> None:
        seq = self._feed.next_seq()
        at_ms = int(self._feed.clock() * 1000)
        self._pending.append(
            Change(kind, task_id, at_ms, seq, tasklist_guid, followers, attribute, user_index)
        )


class ChangeFeed:
    """The one place a world's mutations go through: its lock, its change numbers, its subscribers."""

    def __init__(self, lock: threading.RLock, clock: Callable[[], float] = time.time) -> None:
        self.lock = lock
        self.clock = clock
        self._subscribers: tuple[Subscriber, ...] = ()
        self._seq = 0
        self._local = threading.local()  # per thread: depth of nested mutations, changes to deliver

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Deliver every later change to ``subscriber``; returns the call that stops it."""
        with self.lock:
            self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            with self.lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def next_seq(self) -> int:
        """The next change number (the caller holds the lock)."""
        self._seq += 1
        return self._seq

    @contextmanager
    def mutation(self) -> Iterator[Note]:
        """Hold the lock for one mutation; deliver what it noted once the outermost one released it."""
        local = self._local
        if getattr(local, "depth", 0) == 0:
            local.depth, local.pending = 0, []
        try:
            with self.lock:
                local.depth += 1
                try:
                    yield Note(self, local.pending)
                finally:
                    local.depth -= 1
        finally:
            if local.depth == 0:
                self._deliver(local)

    def _deliver(self, local: threading.local) -> None:
        """Hand this thread's noted changes to the subscribers, outside the lock."""
        pending, local.pending = local.pending, []
        subscribers = self._subscribers
        errors: list[Exception] = []
        for change in pending:
            for subscriber in subscribers:
                try:
                    subscriber(change)
                except Exception as exc:  # the others still get it; raised below
                    errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("change subscribers failed", errors)
