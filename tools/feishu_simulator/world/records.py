"""The records the world's parts keep: plain dataclasses, people as user indexes.

People are stored as indexes into the world's users so that one record renders cheaply in
any of the three user id types.  Kept apart from the parts that own them so that the parts
and the renderers (``v1_shapes``, ``v2_shapes``) can all import them without importing each
other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Who asks: None is the app (tenant token); an int is the user index a user token acts as.
Caller = int | None
#: A keyset cursor: (creation time, id); lists and list tasks are ordered by it.
Cursor = tuple[int, str]


@dataclass(slots=True)
class TaskRecord:
    """One task as v1 shows it; mutable in place (tests edit ``origin`` or ``source`` to test a client)."""

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
    followers: list[int]  # in page order
    follower_set: set[int]
    id_lists: dict[int, list[int]]


@dataclass(slots=True)
class TaskV2:
    """What task v2 shows of a task beyond its v1 record (tuples, replaced when they change)."""

    display_id: str  # the short "t123456" id, not the guid
    ms: int  # millisecond part added to the v1 second timestamps
    start: tuple[int, bool] | None  # (timestamp ms, is_all_day)
    subtask_count: int
    app_followers: tuple[str, ...] = ()

    def created_ms(self, task: TaskRecord) -> int:
        """The task's v2 ``created_at``: its v1 create_time in ms plus the fixed ms part."""
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
