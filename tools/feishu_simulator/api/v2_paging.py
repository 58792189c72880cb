"""Opaque task v2 page tokens, in the same strict base64 as the v1 ones (``paging``).

A list-of-lists token encodes the keyset cursor ``L|<created ms>|<guid>``; a list-tasks token
``T|<list tag>|<created ms>|<task guid>``, where the tag (crc32 of the list guid) makes a token
from another list detectable while keeping tokens under the documented 100 characters.
"""

from __future__ import annotations

import zlib

from .paging import _decode, _encode

MAX_TOKEN_CHARS = 100  # the docs' "maximum length" of page_token

Cursor = tuple[int, str]


def _tag(tasklist_guid: str) -> str:
    return f"{zlib.crc32(tasklist_guid.encode()):08x}"


def tasklists_token(cursor: Cursor) -> str:
    """Token continuing the list of task lists after ``cursor`` = (created ms, guid)."""
    return _encode(f"L|{cursor[0]}|{cursor[1]}")


def tasklists_cursor(token: str) -> Cursor | None:
    """The cursor of a list-of-lists token, or None if it is not one."""
    parts = _decode(token) if len(token) <= MAX_TOKEN_CHARS else None
    if parts is None or len(parts) != 3 or parts[0] != "L" or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]


def tasks_token(tasklist_guid: str, cursor: Cursor) -> str:
    """Token continuing a list's tasks after ``cursor`` = (created ms, task guid)."""
    return _encode(f"T|{_tag(tasklist_guid)}|{cursor[0]}|{cursor[1]}")


def tasks_cursor(token: str, tasklist_guid: str) -> Cursor | None:
    """The cursor of a list-tasks token, or None if unparsable or from another list."""
    parts = _decode(token) if len(token) <= MAX_TOKEN_CHARS else None
    if parts is None or len(parts) != 4 or parts[0] != "T" or parts[1] != _tag(tasklist_guid):
        return None
    if not parts[2].isdigit():
        return None
    return int(parts[2]), parts[3]
