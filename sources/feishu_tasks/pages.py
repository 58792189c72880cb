"""Is this the ``data`` of a well-formed list page? Pure functions, one per endpoint.

A page that is not exactly what the API documents is never half-used: a follower id that is
not a non-empty string must not become a row (not even as ``str(True)``), and only a page
that really says "nothing more" may end a task. The parsers raise ``PageError`` with a short
reason that names the bad field by position and type, never by content: a hostile answer
could carry anything, and the reason ends up in ``task_fetch_status``.

Tolerated, because the API omits empty fields: ``items`` absent (no items), ``has_more``
absent (false), ``page_token`` absent or null. Not tolerated: ``items`` or ``has_more`` null,
wrong types, and ``has_more`` true without a non-empty ``page_token``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a key that is not in the JSON object at all


class PageError(ValueError):
    """The page breaks the API's documented shape; ``str()`` says where and how."""


@dataclass(slots=True)
class Follower:
    """One follower: ``id`` and, rarely, an ``id_list`` (v1); its ``member_type`` (v2: user or app)."""

    id: str
    id_list: list[str] | None = None
    member_type: str | None = None


@dataclass(slots=True)
class ListPage(Generic[T]):
    """The checked content of one page; ``page_token`` is non-empty exactly when ``has_more``."""

    items: list[T]
    has_more: bool
    page_token: str
    log_id: str | None = None


PageParser = Callable[[Any], ListPage[T]]

# Feishu's ids are ~35 characters (ou_ + 32 hex); anything this long is not an id. Printable
# text only: a control character or a lone surrogate (which cannot even be stored) is not one.
MAX_ID_CHARS = 256
# A page token goes back into the next request's URL: bounded well below httpx's URL limit.
MAX_PAGE_TOKEN_CHARS = 4096


def describe(value: Any) -> str:
    """What a JSON value is, for a message: scalars as JSON, never the content of a string."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) in (int, float):
        text = repr(value)
        return text if len(text) <= 24 else "a number"
    if type(value) is str:
        return "an empty string" if not value else "a string"
    if type(value) is list:
        return f"a list of {len(value)}"
    if type(value) is dict:
        return "an object"
    return "a " + type(value).__name__


def _list_fields(data: Any) -> tuple[list[Any], bool, str]:
    """``(items, has_more, page_token)`` of a page's ``data``; raises PageError if malformed."""
    if type(data) is not dict:
        raise PageError("data is missing" if data is MISSING else f"data is {describe(data)}, not an object")
    items = data.get("items", MISSING)
    if items is MISSING:
        items = []
    elif type(items) is not list:
        raise PageError(f"data.items is {describe(items)}, not a list")
    has_more = data.get("has_more", False)
    if has_more is not True and has_more is not False:
        raise PageError(f"data.has_more is {describe(has_more)}, not true or false")
    token = data.get("page_token")
    if token is not None and type(token) is not str:
        raise PageError(f"data.page_token is {describe(token)}, not a string")
    if not has_more:
        return items, False, ""
    if not token:
        raise PageError(
            f"data.has_more is true but data.page_token is {describe(MISSING if token is None else token)}"
        )
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise PageError(f"data.page_token is a string {len(token)} characters long, not a page token")
    return items, True, token


def _non_empty_string(value: Any, where: str) -> str:
    if type(value) is not str or not value:
        raise PageError(f"{where} is {describe(value)}, not a non-empty string")
    if len(value) > MAX_ID_CHARS or not value.isprintable():
        what = f"{len(value)} characters long" if len(value) > MAX_ID_CHARS else "not printable text"
        raise PageError(f"{where} is a string {what}, not an id")
    return value


def _object(item: Any, index: int) -> dict[str, Any]:
    if type(item) is not dict:
        raise PageError(f"data.items[{index}] is {describe(item)}, not an object")
    return item


def _follower(item: Any, index: int) -> Follower:
    item = _object(item, index)
    follower_id = _non_empty_string(item.get("id", MISSING), f"data.items[{index}].id")
    id_list = item.get("id_list")
    if id_list is None:
        return Follower(follower_id)
    if type(id_list) is not list:
        raise PageError(f"data.items[{index}].id_list is {describe(id_list)}, not a list")
    for position, value in enumerate(id_list):
        _non_empty_string(value, f"data.items[{index}].id_list[{position}]")
    return Follower(follower_id, id_list)


def parse_followers_page(data: Any) -> ListPage[Follower]:
    """A page of ``GET /task/v1/tasks/{id}/followers``: items ``{id, id_list?}``."""
    items, has_more, token = _list_fields(data)
    followers: list[Follower] = []
    for item in items:
        # The common item, {"id": "<non-empty string>"}, is checked inline (this is the hot
        # path); every other shape goes through _follower.
        if type(item) is dict and len(item) == 1:
            follower_id = item.get("id")
            if (
                type(follower_id) is str
                and 0 < len(follower_id) <= MAX_ID_CHARS
                and follower_id.isprintable()
            ):
                followers.append(Follower(follower_id))
                continue
        followers.append(_follower(item, len(followers)))
    return ListPage(followers, has_more, token)


def parse_tasks_page(data: Any) -> ListPage[dict[str, Any]]:
    """A page of ``GET /task/v1/tasks``: task objects, each with a non-empty string ``id``."""
    items, has_more, token = _list_fields(data)
    for index, item in enumerate(items):
        _non_empty_string(_object(item, index).get("id", MISSING), f"data.items[{index}].id")
    return ListPage(items, has_more, token)


def _guid_items(data: Any) -> ListPage[dict[str, Any]]:
    """A v2 list page whose items are objects, each with a non-empty string ``guid``."""
    items, has_more, token = _list_fields(data)
    for index, item in enumerate(items):
        _non_empty_string(_object(item, index).get("guid", MISSING), f"data.items[{index}].guid")
    return ListPage(items, has_more, token)


def parse_tasklists_page(data: Any) -> ListPage[dict[str, Any]]:
    """A page of ``GET /task/v2/tasklists``: task list objects, each with a ``guid``."""
    return _guid_items(data)


def parse_tasklist_tasks_page(data: Any) -> ListPage[dict[str, Any]]:
    """A page of ``GET /task/v2/tasklists/{guid}/tasks``: task summaries, each with a ``guid``."""
    return _guid_items(data)


FOLLOWER_ROLE = "follower"


def parse_task_followers_v2(data: Any) -> ListPage[Follower]:
    """``GET /task/v2/tasks/{guid}`` as one page of followers: the members whose role is follower.

    Every member must be an object with string ``id`` and ``role`` (``type``, if present, a
    string): a member list that is not what the API documents fails the task, as a bad follower
    page does, rather than being read in part.
    """
    if type(data) is not dict:
        raise PageError("data is missing" if data is MISSING else f"data is {describe(data)}, not an object")
    task = data.get("task", MISSING)
    if type(task) is not dict:
        raise PageError(f"data.task is {describe(task)}, not an object")
    members = task.get("members", MISSING)
    if members is MISSING:
        members = []
    elif type(members) is not list:
        raise PageError(f"data.task.members is {describe(members)}, not a list")
    followers: list[Follower] = []
    for index, member in enumerate(members):
        where = f"data.task.members[{index}]"
        if type(member) is not dict:
            raise PageError(f"{where} is {describe(member)}, not an object")
        member_id = _non_empty_string(member.get("id", MISSING), f"{where}.id")
        role = _non_empty_string(member.get("role", MISSING), f"{where}.role")
        member_type = member.get("type")
        if member_type is not None:
            member_type = _non_empty_string(member_type, f"{where}.type")
        if role == FOLLOWER_ROLE:
            followers.append(Follower(member_id, member_type=member_type))
    return ListPage(followers, False, "")
