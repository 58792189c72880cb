"""Per-task state of one run, kept on disk so that memory does not grow with the tenant.

A run needs, per task: the set of ids it has taken (each task is fetched once, whether given,
listed or stale), the order to fetch them in, and what the destination knew before (the last
``last_ok_at``, the pages a task took last time, the stale sweep's ids). Held as Python sets,
lists and dicts that was ~460 MB at 1,000,000 tasks (bench/task_state.py); here each is a table
in a temporary SQLite database, and the process holds only SQLite's page cache.

Why SQLite (the standard library's) and not DuckDB: the access pattern is one-row inserts and
lookups, one per task, which SQLite does in microseconds and DuckDB in a hundred times that.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

CHUNK = 10_000  # rows per executemany / per read: bounded memory, few round trips
CACHE_KIB = 4096  # SQLite's page cache per file
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

T = TypeVar("T")


def _chunks(rows: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _TempDatabase:
    """A private temporary SQLite database (``sqlite3.connect("")``): on disk past a small page
    cache, in ``TMPDIR``; SQLite unlinks its file at once, so even a killed run leaves nothing.

    One connection, shared by the fetch's thread and dlt's under a lock; no journal and no
    fsync: the file dies with the run, so durability buys nothing.
    """

    def __init__(self, schema: str) -> None:
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.executescript(
            f"pragma journal_mode = off; pragma synchronous = off; pragma cache_size = -{CACHE_KIB};"
            f"pragma temp_store = file; {schema}"
        )
        self._lock = threading.Lock()

    def _write(self, sql: str, rows: list[Any]) -> None:
        """``rows`` in one transaction (the caller holds the lock): one commit, not one per row."""
        self._db.execute("begin")
        self._db.executemany(sql, rows)
        self._db.execute("commit")

    def _one(self, sql: str, *args: Any) -> Any:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return row[0] if row else None

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class TakenTasks(_TempDatabase):
    """The run's task ids, each once, in the order they were taken: the dedupe set and the queue.

    ``kind`` says why a task is in the run (``given``, ``tasklist``, ``discovered``, ``stale``) or
    that a given id is malformed (``INVALID``: recorded, never fetched). The given ids are loaded
    in bulk: appended unindexed, deduplicated by a sort, then indexed (6 s for 1,000,000 ids,
    against 19 s for one-by-one inserts into the unique index, whose keys come in random order).
    """

    INVALID = "invalid"

    def __init__(self, given: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(
            "create table given (seq integer primary key, task_id text not null, kind text not null);"
            "create table taken (seq integer primary key, task_id text not null, kind text not null);"
        )
        with self._lock:
            for chunk in _chunks(given):
                self._write("insert into given (task_id, kind) values (?, ?)", chunk)
            # a bare column beside min() comes from the row that has the min: the first occurrence
            self._db.executescript(
                "insert into taken select min(seq), task_id, kind from given group by task_id;"
                "drop table given; create unique index taken_ids on taken (task_id);"
            )

    def take(self, task_id: str, kind: str) -> bool:
        """Add ``task_id``; False if the run has it already."""
        with self._lock:
            insert = "insert or ignore into taken (task_id, kind) values (?, ?)"
            return self._db.execute(insert, (task_id, kind)).rowcount == 1

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return int(self._one("select count(*) from taken"))
        return int(self._one("select count(*) from taken where kind = ?", kind))

    def __contains__(self, task_id: object) -> bool:
        return self._one("select 1 from taken where task_id = ?", task_id) is not None

    def after(self, seq: int, limit: int = 1_000) -> list[tuple[int, str, str]]:
        """The next tasks in order, after position ``seq``."""
        return self._rows(
            "select seq, task_id, kind from taken where seq > ? order by seq limit ?", seq, limit
        )


def _to_us(value: datetime | None) -> int | None:
    """An instant as microseconds since the epoch (a naive time from the destination is UTC)."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _US


class KnownTasks(_TempDatabase):
    """What the destination held about the tasks when the run started, read once, streamed in.

    ``last_ok`` and ``pages`` are read-only mappings (task id → value) over it, for the code that
    used to take dicts; ``sweep`` is the stale sweep's ids, oldest first.
    """

    def __init__(self) -> None:
        super().__init__(
            "create table last_ok (task_id text primary key, at_us integer not null) without rowid;"
            "create table pages (task_id text primary key, pages integer not null) without rowid;"
            "create table sweep (seq integer primary key, task_id text not null);"
            "create table list_tasks (guid text, task_id text, primary key (guid, task_id)) without rowid;"
        )
        self.filled: set[str] = set()  # the tables that hold rows: a lookup in another is skipped
        self.last_ok: Mapping[str, datetime] = _Column(self, "last_ok", "at_us", _from_us)
        self.pages: Mapping[str, int] = _Column(self, "pages", "pages", int)
        self.sweep: Collection[str] = _Sweep(self)

    def add_last_ok(self, rows: Iterable[tuple[str, datetime | None]]) -> None:
        self._insert("last_ok", ((str(key), us) for key, at in rows if (us := _to_us(at)) is not None))

    def add_pages(self, rows: Iterable[tuple[str, int]]) -> None:
        self._insert("pages", ((str(key), int(pages)) for key, pages in rows))

    def add_sweep(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            for chunk in _chunks(task_ids):
                self._write("insert into sweep (task_id) values (?)", [(str(t),) for t in chunk])

    def add_list_tasks(self, rows: Iterable[tuple[str, str]]) -> None:
        """The tasks each known task list held at the destination (``tasklist_tasks``)."""
        with self._lock:
            for chunk in _chunks(rows):
                pairs = [(str(guid), str(task_id)) for guid, task_id in chunk]
                self._write("insert or ignore into list_tasks values (?, ?)", pairs)

    def tasks_of_list(self, guid: str) -> list[str]:
        """The tasks a known list held (one list's worth: at most its size)."""
        return [task_id for (task_id,) in self._rows("select task_id from list_tasks where guid = ?", guid)]

    def _insert(self, table: str, rows: Iterable[tuple[str, int]]) -> None:
        """Rows into a table keyed by task id: fastest in key order, as known_tasks reads them."""
        with self._lock:
            for chunk in _chunks(rows):
                self._write(f"insert or replace into {table} values (?, ?)", chunk)
                self.filled.add(table)


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


class _Column(Mapping[str, T]):
    """One table of ``KnownTasks`` as a read-only mapping ``task_id`` → value."""

    def __init__(self, db: KnownTasks, table: str, column: str, convert: Any) -> None:
        self._db, self._table, self._column, self._convert = db, table, column, convert

    def __getitem__(self, key: str) -> T:
        if self._table not in self._db.filled:  # the usual case for pages: no query per task
            raise KeyError(key)
        value = self._db._one(f"select {self._column} from {self._table} where task_id = ?", key)
        if value is None:
            raise KeyError(key)
        return self._convert(value)

    def __iter__(self) -> Iterator[str]:
        last = ""
        while keys := self._db._rows(
            f"select task_id from {self._table} where task_id > ? order by task_id limit ?", last, CHUNK
        ):
            yield from (key for (key,) in keys)
            last = keys[-1][0]

    def __len__(self) -> int:
        return int(self._db._one(f"select count(*) from {self._table}"))


class _Sweep(Collection[str]):
    """The stale sweep's task ids in their order, read a chunk at a time."""

    def __init__(self, db: KnownTasks) -> None:
        self._db = db

    def __iter__(self) -> Iterator[str]:
        seq = 0
        while rows := self._db._rows(
            "select seq, task_id from sweep where seq > ? order by seq limit ?", seq, CHUNK
        ):
            yield from (task_id for _, task_id in rows)
            seq = rows[-1][0]

    def __len__(self) -> int:
        return int(self._db._one("select count(*) from sweep"))

    def __contains__(self, task_id: object) -> bool:
        return self._db._one("select 1 from sweep where task_id = ?", task_id) is not None
