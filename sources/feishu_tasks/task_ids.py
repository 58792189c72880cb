"""Task ids: validated before any request, so no input can reach another endpoint."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import ConfigError

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


def iter_task_ids_file(path: str | Path) -> Iterator[str]:
    """One id per line; blank lines and ``#`` comments (whole-line or trailing) are ignored.

    UTF-8 (with or without a BOM) and UTF-16 / UTF-32 with a BOM, as editors on Windows
    save them; any other file raises ConfigError naming the file and the first bad line.
    Read line by line: a file of a million ids is never held whole (issue 19's memory).
    """
    with open(path, "rb") as probe:
        head = probe.read(4)
    encoding = _encoding_of(head)
    try:
        # newline="": lines end at \n, \r or \r\n; splitlines() below splits the rest as str does
        with open(path, encoding=encoding, newline="") as text:
            for line in text:
                if "\x00" in line:
                    raise UnicodeError("NUL")
                for part in line.splitlines():
                    value = part.split("#", 1)[0].strip()
                    if value:
                        yield value
    except UnicodeError:
        # The exact line and cause come from decoding the whole file (rare: a broken file).
        decode_text_file(Path(path).read_bytes(), path)
        raise ConfigError(f"{path}: not readable as {encoding.upper()}; save the file as UTF-8") from None


class TaskIdsFile:
    """A task-ids file as an iterable that reads it again on each pass, holding no id.

    The run reads it twice: once to check it before anything starts (``count``), once as the
    fetch takes its ids into the on-disk ledger.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[str]:
        return iter_task_ids_file(self.path)

    def count(self) -> int:
        """How many ids (before deduplication) the file holds; raises ConfigError if unreadable."""
        return sum(1 for _ in self)


class IdsInOrder:
    """Ids from several places (flags, a file, a query), in that order, each pass anew."""

    def __init__(self, *parts: Iterable[str]) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[str]:
        for part in self.parts:
            yield from part


# Longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _encoding_of(head: bytes) -> str:
    """The encoding a file's first bytes (its BOM) name, else UTF-8."""
    return next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")


def decode_text_file(raw: bytes, path: str | Path) -> str:
    """The text of a file's bytes: the encoding its BOM names, else UTF-8."""
    encoding = _encoding_of(raw)
    name = encoding.removesuffix("-sig").upper()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise ConfigError(
            f"{path}: line {line} is not valid {name} ({exc.reason}); save the file as UTF-8"
        ) from None
    if "\x00" in text:  # UTF-16 without a BOM decodes as UTF-8 with a NUL after every character
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError(
            f"{path}: line {line} has NUL characters (UTF-16 without a BOM?); save the file as UTF-8"
        )
    return text
