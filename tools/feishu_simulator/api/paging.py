"""Opaque page tokens: urlsafe base64 (unpadded) of a small tagged text.

Follower tokens encode ``f|<task_id>|<offset>`` so a token from another task is
detectable; task-list tokens encode the keyset cursor ``l|<create_time>|<id>``.
Decoding is strict (must re-encode to the same string), so any edit is rejected.
"""

from __future__ import annotations

import base64
import binascii


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _decode(token: str) -> list[str] | None:
    """The token's fields, or None if it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if _encode(text) != token:
        return None
    return text.split("|")


def follower_token(task_id: str, offset: int) -> str:
    """Token for the follower page of ``task_id`` starting at ``offset``."""
    return _encode(f"f|{task_id}|{offset}")


def follower_offset(token: str, task_id: str) -> int | None:
    """The offset a follower token points at, or None if unparsable or for another task."""
    parts = _decode(token)
    if parts is None or len(parts) != 3 or parts[0] != "f" or parts[1] != task_id:
        return None
    if not parts[2].isdigit():
        return None
    return int(parts[2])


def list_token(cursor: tuple[int, str]) -> str:
    """Token continuing the task list after ``cursor`` = (create_time, task id)."""
    return _encode(f"l|{cursor[0]}|{cursor[1]}")


def list_cursor(token: str) -> tuple[int, str] | None:
    """The (create_time, id) cursor of a task-list token, or None if unparsable."""
    parts = _decode(token)
    if parts is None or len(parts) != 3 or parts[0] != "l" or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]
