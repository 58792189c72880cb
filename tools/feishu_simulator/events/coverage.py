"""Which tasks' events the app receives: its v2 task subscriptions and the tasks it created.

Feishu delivers ``task.task.update_user_access_v2`` only for subscribed identities: the app's
(tenant token) covers the tasks the app is responsible for, a user's (user token) the tasks that
user created, is responsible for or follows (docs/feishu-api.md). The simulator's reading, since
the docs leave it open: the app is "responsible for" the tasks of the lists it is a member of and
the tasks it created (every task made through ``World.add_task`` once the events part is attached);
a task once covered stays covered (its unfollow and its deletion are still told), and a task that
comes into an identity's scope later is covered from then on. ``task.task.updated_v1`` covers the
tasks the app created.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..world import Change, ChangeKind, World

APP = "app"


def identity_of(caller: int | None) -> str:
    """The app (None) or ``user:<index>``."""
    return APP if caller is None else f"user:{caller}"


@dataclass
class Coverage:
    """The subscribed identities and the tasks they cover (sets that only grow)."""

    world: World
    subscribed: dict[str, set[str]] = field(default_factory=dict)  # identity -> covered task ids
    app_created: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, caller: int | None) -> bool:
        """Subscribe the app (None) or a user; False when it was already (idempotent)."""
        identity = identity_of(caller)
        with self.lock:
            if identity in self.subscribed:
                return False
        with self.world.lock:
            app_lists = set(self.world.find_tasklists(app_member=True))
            covered = {t for t in self.world.task_ids() if self._in_scope(identity, t, app_lists)}
        with self.lock:
            self.subscribed.setdefault(identity, set()).update(covered)
        return True

    def identities(self) -> list[str]:
        with self.lock:
            return sorted(self.subscribed)

    def note(self, change: Change) -> None:
        """Bring the covered sets up to date with a change (before deciding what it sends)."""
        task_id = change.task_id
        if task_id is None or change.kind == ChangeKind.TASK_DELETED:
            return
        with self.lock:
            if change.kind == ChangeKind.TASK_CREATED:
                self.app_created.add(task_id)
            identities = [i for i, covered in self.subscribed.items() if task_id not in covered]
        if not identities:
            return
        app_lists = set(self.world.find_tasklists(app_member=True))
        gained = [i for i in identities if self._in_scope(i, task_id, app_lists)]
        with self.lock:
            for identity in gained:
                self.subscribed[identity].add(task_id)

    def v2_covers(self, task_id: str) -> bool:
        with self.lock:
            return any(task_id in covered for covered in self.subscribed.values())

    def created_by_app(self, task_id: str) -> bool:
        with self.lock:
            return task_id in self.app_created

    def _in_scope(self, identity: str, task_id: str, app_lists: set[str]) -> bool:
        """Whether the identity is responsible for (or, a user, created or follows) the task now."""
        world = self.world
        with world.lock:
            if task_id not in world:
                return False
            if identity == APP:
                if task_id in self.app_created:
                    return True
                return any(guid in app_lists for guid in world.tasklists_of(task_id))
            user = int(identity.split(":", 1)[1])
            task = world._task(task_id)
            return user == task.creator or user in task.collaborators or user in task.follower_set
