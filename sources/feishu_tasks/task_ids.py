"""Task ids: validated before any request, so no input can reach another endpoint."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

# A malformed id is recorded as given, up to this many characters (it is a key, not a document).
MAX_INVALID_ID_CHARS = 200
# Feishu task ids are UUIDs such as 0d38e26e-190a-49e9-93a2-35067763ed1f.
_TASK_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalize_task_id(raw: str) -> str | None:
    """The canonical (trimmed, lower-case) form of a task id, or None if it is not one."""
    candidate = raw.strip().lower()
    return candidate if _TASK_ID_RE.fullmatch(candidate) else None


def task_key(raw: str) -> str:
    """The id as stored in ``task_fetch_status``: canonical when valid, else trimmed and cut short."""
    return normalize_task_id(raw) or raw.strip()[:MAX_INVALID_ID_CHARS]


def unique_in_order(raw_ids: Iterable[str]) -> Iterator[str]:
    """Each id once by its stored key (``task_key``), first occurrence wins.

    Deduplicating on the stored key keeps the summary's counts equal to the table's rows:
    two long garbage lines that share their first 200 characters are one row, and one count.
    """
    seen: set[str] = set()
    for raw in raw_ids:
        key = task_key(raw)
        if key and key not in seen:
            seen.add(key)
            yield key


def read_task_ids_file(path: str | Path) -> list[str]:
    """One id per line; blank lines and ``#`` comments (whole-line or trailing) are ignored."""
    ids = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        value = line.split("#", 1)[0].strip()
        if value:
            ids.append(value)
    return ids
