"""The tenant's people: users with their three ids, and the user each user token acts as.

Users never change once the world is made, so their id tables (index -> id per id type, and
back) are built once and read without the lock; every record elsewhere names people by index.
The token bindings do change (``bind_user_token``), through the change feed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from .changes import ChangeFeed, ChangeKind

ID_TYPES: tuple[str, ...] = ("open_id", "union_id", "user_id")
#: The user a user token acts as unless ``bind_user_token`` says otherwise.
DEFAULT_TOKEN_USER = 0


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


class People:
    """The users, their id tables, and the user token bindings."""

    def __init__(self, users: list[User], lock: threading.RLock, feed: ChangeFeed) -> None:
        if not users:
            raise ValueError("a world needs at least one user")
        self.users = users
        self._lock = lock
        self._feed = feed
        self._ids: dict[str, list[str]] = {t: [u.id_of(t) for u in users] for t in ID_TYPES}
        self._index: dict[str, dict[str, int]] = {
            t: {v: i for i, v in enumerate(vals)} for t, vals in self._ids.items()
        }
        #: User token -> the user index it acts as (others act as DEFAULT_TOKEN_USER).
        self.user_token_owners: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.users)

    def ids(self, user_id_type: str) -> list[str]:
        """Every user's id of one type, by user index (KeyError for an unknown type)."""
        return self._ids[user_id_type]

    def index_of(self, user_id: str, user_id_type: str) -> int | None:
        """The index of the user with this id, or None."""
        return self._index[user_id_type].get(user_id)

    def user(self, user_id: str, user_id_type: str = "open_id") -> User:
        """The user behind an id of any type (for comparing answers across id types)."""
        return self.users[self._index[user_id_type][user_id]]

    def convert_id(self, user_id: str, from_type: str, to_type: str) -> str:
        """Map one user's id between id types."""
        return self._ids[to_type][self._index[from_type][user_id]]

    def token_user(self, token: str) -> int:
        """The user index a user token acts as."""
        with self._lock:
            return self.user_token_owners.get(token, DEFAULT_TOKEN_USER)

    def bind_user_token(self, token: str, user_index: int) -> None:
        """Let a user token act as ``user_index`` (others act as DEFAULT_TOKEN_USER)."""
        self.users[user_index]  # IndexError for unknown users
        with self._feed.mutation() as note:
            if self.user_token_owners.get(token) != user_index:
                self.user_token_owners[token] = user_index
                note(ChangeKind.USER_TOKEN_BOUND, user_index=user_index)


def make_users(count: int, seed: int) -> list[User]:
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
