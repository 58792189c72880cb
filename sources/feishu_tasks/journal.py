"""The change journal: what Feishu's events said changed, kept on disk between receiving and loading.

``feishu-followers listen`` (or ``follow``) appends to it as events arrive; a load
(``run --changed``, the source's ``journal`` argument, a Dagster sensor) reads what is new since
its last consumed position. Two processes use it at once, and DuckDB allows one writing process,
so the journal is a SQLite file of its own (write-ahead log: one writer, readers never blocked).

Guarantees:

- **Durable before acknowledged.** ``record`` returns only after the transaction is on disk
  (``synchronous = FULL``); the receiver answers Feishu 200 only then, so a crash between the
  record and the answer gives a duplicate (Feishu pushes again), never a loss.
- **Each event once.** Events are deduplicated on their id (Feishu retries for ~7 hours): a
  replay is recorded once, also after its change was consumed and pruned (ids are remembered for
  ``SEEN_RETENTION_MS``).
- **Ordered positions.** Every change gets a position that only grows; a consumer keeps the last
  position it loaded (the source keeps it in dlt state, which commits with the load) and
  acknowledges it here, and changes every consumer has acknowledged are pruned.
- **Bounded.** Consumed changes and old event ids are pruned; what nobody consumed yet is kept.

It also keeps what a store app needs from events (the latest ``app_ticket``, the tenants that
installed the app) and a receiver's heartbeat, so a run can tell whether ``listen`` is running.
The journal holds the app ticket: the file is created readable by its owner only.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Api = Literal["v1", "v2"]
TenantStatus = Literal["installed", "active", "stopped", "uninstalled"]

# The event types a change carries are v2's names (``task.task.update_user_access_v2``'s
# ``event_types``); v1's ``task.task.updated_v1`` ``obj_type`` maps onto them, and v1's tenant-wide
# ``task.task.update_tenant_v1`` (whose ``object_type`` values are undocumented) is ``task_update``.
V1_OBJ_TYPES = {
    1: "task_summary_update",  # details
    2: "task_assignees_update",  # collaborators
    3: "task_followers_update",
    4: "task_reminders_update",
    5: "task_completed_update",  # completed
    6: "task_completed_update",  # uncompleted
    7: "task_deleted",
}
V1_TENANT_UPDATE = "task_update"
# The types whose event time dates a follower change: the history starts and ends intervals then.
FOLLOWER_EVENT_TYPES = frozenset({"task_followers_update", "task_create", "task_deleted"})

# Feishu pushes an unanswered event again after ~15 s, 5 min, 1 h and 6 h: remember ids longer.
SEEN_RETENTION_MS = 48 * 3600 * 1000
JOURNAL_SUFFIX = ".journal.sqlite"
BUSY_TIMEOUT_SECONDS = 30.0

_SCHEMA = (
    """create table if not exists changes (
        position integer primary key autoincrement,
        event_id text not null,
        tenant_key text not null,
        api text not null,
        task_id text not null,
        event_types text not null,
        event_time_ms integer,
        deleted integer not null,
        received_at_ms integer not null,
        attempts integer not null default 0)""",
    "create table if not exists seen_events (event_id text primary key, received_at_ms integer not null)",
    "create table if not exists consumers (name text primary key, position integer not null, "
    "updated_at_ms integer not null)",
    "create table if not exists counters (name text primary key, value integer not null)",
    "create table if not exists app_tickets (app_id text primary key, ticket text not null, "
    "event_time_ms integer, received_at_ms integer not null)",
    "create table if not exists tenants (tenant_key text primary key, status text not null, "
    "event_time_ms integer, updated_at_ms integer not null)",
    "create table if not exists receivers (name text primary key, heartbeat_ms integer not null)",
)


@dataclass(frozen=True)
class TaskChange:
    """An event's word that a task changed: read it again (through the API its id belongs to)."""

    task_id: str
    api: Api  # v1: a task id; v2: a task guid
    event_types: tuple[str, ...] = ()
    event_time_ms: int | None = None
    deleted: bool = False
    tenant_key: str = ""
    attempts: int = 0  # loads that read it and could not finish it (requeued)


@dataclass(frozen=True)
class AppTicket:
    """A store app's ``app_ticket`` (pushed about every hour, or on resend)."""

    app_id: str
    ticket: str = field(repr=False)
    event_time_ms: int | None = None


@dataclass(frozen=True)
class TenantState:
    """A tenant installed the app (``app_open``), or stopped or started it (``app_status_change``)."""

    tenant_key: str
    status: TenantStatus
    event_time_ms: int | None = None


Fact = TaskChange | AppTicket | TenantState


@dataclass(frozen=True)
class RecordedEvent:
    """One event as received: its id and what it says (no facts: a type we do not use)."""

    event_id: str
    facts: tuple[Fact, ...] = ()
    event_type: str = ""


@dataclass(frozen=True)
class JournalChange:
    """A recorded task change and its position."""

    position: int
    change: TaskChange


def latest_per_task(changes: Iterable[JournalChange]) -> dict[str, TaskChange]:
    """One change per task (in the order tasks were first marked) that says all its events said:
    every event type, deleted if any said so, the latest time of an event that dates a follower
    change, and the most attempts."""
    merged: dict[str, TaskChange] = {}
    for entry in changes:
        change = entry.change
        before = merged.get(change.task_id)
        if before is None:
            merged[change.task_id] = change
            continue
        times = [
            c.event_time_ms for c in (before, change) if c.event_time_ms is not None and _dates_followers(c)
        ]
        merged[change.task_id] = TaskChange(
            change.task_id,
            change.api,
            tuple(dict.fromkeys((*before.event_types, *change.event_types))),
            max(times) if times else change.event_time_ms,
            before.deleted or change.deleted,
            change.tenant_key,
            max(before.attempts, change.attempts),
        )
    return merged


def _dates_followers(change: TaskChange) -> bool:
    return change.event_time_ms is not None and bool(FOLLOWER_EVENT_TYPES.intersection(change.event_types))


class JournalError(Exception):
    """The journal cannot be written or read (a full disk, a damaged file); ``str()`` says why."""


def default_journal_path(pipelines_dir: str | Path, pipeline_name: str) -> Path:
    """Where ``listen`` and ``run`` of one pipeline find the journal: beside its working folder.

    Beside it, not in it: schedulers (Dagster, Airflow) wipe a pipeline's working folder.
    """
    return Path(pipelines_dir) / f".{pipeline_name}{JOURNAL_SUFFIX}"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Journal:
    """One SQLite connection to the journal file, safe to share between threads (one lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():  # the ticket is a secret: owner only, from the first byte
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            self._db.execute("pragma journal_mode = wal")
            self._db.execute("pragma synchronous = full")  # a commit is on disk before record() returns
            with self._transaction():
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._db.execute("create index if not exists changes_event on changes (event_id)")
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the change journal {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``begin immediate`` … ``commit`` under the lock; rolled back on any error."""
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    # ------------------------------------------------------------------ writing (the receiver)
    def record(self, events: Sequence[RecordedEvent], received_at_ms: int | None = None) -> list[bool]:
        """Record events in one durable transaction; for each, whether it was new (not a replay).

        Many events in one call share one disk sync: the receiver gathers the events that arrive
        together and answers each of them once this returns.
        """
        now = received_at_ms if received_at_ms is not None else _now_ms()
        fresh: list[bool] = []
        try:
            with self._transaction() as db:
                for event in events:
                    seen = db.execute(
                        "insert into seen_events values (?, ?) on conflict do nothing", (event.event_id, now)
                    )
                    new = seen.rowcount == 1
                    fresh.append(new)
                    if new:
                        self._record_facts(db, event, now)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write the change journal {self.path}: {exc}") from None
        return fresh

    @staticmethod
    def _record_facts(db: sqlite3.Connection, event: RecordedEvent, now: int) -> None:
        if not event.facts:
            db.execute(
                "insert into counters values (?, 1) on conflict (name) do update set value = value + 1",
                (f"ignored:{event.event_type or 'unknown'}",),
            )
        for fact in event.facts:
            match fact:
                case TaskChange():
                    db.execute(
                        "insert into changes (event_id, tenant_key, api, task_id, event_types, event_time_ms,"
                        " deleted, received_at_ms) values (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            event.event_id,
                            fact.tenant_key,
                            fact.api,
                            fact.task_id,
                            ",".join(fact.event_types),
                            fact.event_time_ms,
                            int(fact.deleted),
                            now,
                        ),
                    )
                case AppTicket():
                    db.execute(
                        "insert into app_tickets values (?, ?, ?, ?) on conflict (app_id) do update set "
                        "ticket = excluded.ticket, event_time_ms = excluded.event_time_ms, "
                        "received_at_ms = excluded.received_at_ms",
                        (fact.app_id, fact.ticket, fact.event_time_ms, now),
                    )
                case TenantState():
                    db.execute(
                        "insert into tenants values (?, ?, ?, ?) on conflict (tenant_key) do update set "
                        "status = excluded.status, event_time_ms = excluded.event_time_ms, "
                        "updated_at_ms = excluded.updated_at_ms "
                        "where coalesce(excluded.event_time_ms, 0) >= coalesce(tenants.event_time_ms, 0)",
                        (fact.tenant_key, fact.status, fact.event_time_ms, now),
                    )

    def requeue(self, changes: Iterable[TaskChange], reason: str) -> int:
        """Mark tasks again (a load that could not finish them); new positions, one more attempt each."""
        now = _now_ms()
        rows = [
            (
                f"{reason}:{now}:{n}",
                c.tenant_key,
                c.api,
                c.task_id,
                ",".join(c.event_types),
                c.event_time_ms,
                int(c.deleted),
                c.attempts + 1,
            )
            for n, c in enumerate(changes)
        ]
        with self._transaction() as db:
            db.executemany(
                "insert into changes (event_id, tenant_key, api, task_id, event_types, event_time_ms, "
                f"deleted, attempts, received_at_ms) values (?, ?, ?, ?, ?, ?, ?, ?, {now})",
                rows,
            )
        return len(rows)

    def heartbeat(self, receiver: str = "listen") -> None:
        """A running receiver says so (a run waiting for an app ticket checks it)."""
        with self._transaction() as db:
            db.execute(
                "insert into receivers values (?, ?) "
                "on conflict (name) do update set heartbeat_ms = excluded.heartbeat_ms",
                (receiver, _now_ms()),
            )

    # ------------------------------------------------------------------ reading (a load)
    def last_position(self) -> int:
        with self._lock:
            row = self._db.execute("select coalesce(max(position), 0) from changes").fetchone()
            acked = self._db.execute("select coalesce(max(position), 0) from consumers").fetchone()
        return max(int(row[0]), int(acked[0]))

    def changes_after(self, position: int, tenant_key: str | None = None) -> list[JournalChange]:
        """Every recorded change past ``position``, oldest first (of one tenant, if given)."""
        sql = (
            "select position, tenant_key, api, task_id, event_types, event_time_ms, deleted, attempts "
            "from changes where position > ?"
        )
        args: tuple[object, ...] = (position,)
        if tenant_key is not None:
            sql, args = sql + " and tenant_key = ?", (position, tenant_key)
        with self._lock:
            rows = self._db.execute(sql + " order by position", args).fetchall()
        return [
            JournalChange(
                int(pos),
                TaskChange(
                    str(task_id),
                    "v2" if api == "v2" else "v1",
                    tuple(t for t in str(types).split(",") if t),
                    None if when is None else int(when),
                    bool(deleted),
                    str(tenant),
                    int(attempts),
                ),
            )
            for pos, tenant, api, task_id, types, when, deleted, attempts in rows
        ]

    def pending(self, position: int, tenant_key: str | None = None) -> int:
        """How many changes are past ``position`` (a sensor's question)."""
        sql, args = "select count(*) from changes where position > ?", (position,)
        if tenant_key is not None:
            sql, args = sql + " and tenant_key = ?", (position, tenant_key)  # type: ignore[assignment]
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])

    def acknowledge(self, consumer: str, position: int) -> int:
        """``consumer`` has loaded everything up to ``position``: prune what every consumer has.

        Returns how many changes were pruned. Event ids are forgotten after ``SEEN_RETENTION_MS``.
        """
        now = _now_ms()
        with self._transaction() as db:
            db.execute(
                "insert into consumers values (?, ?, ?) on conflict (name) do update set "
                "position = max(position, excluded.position), updated_at_ms = excluded.updated_at_ms",
                (consumer, position, now),
            )
            pruned = db.execute("delete from changes where position <= (select min(position) from consumers)")
            db.execute("delete from seen_events where received_at_ms < ?", (now - SEEN_RETENTION_MS,))
        return pruned.rowcount

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                str(name): int(value) for name, value in self._db.execute("select name, value from counters")
            }

    # ------------------------------------------------------------------ store apps
    def latest_ticket(self, app_id: str) -> tuple[str, int] | None:
        """The newest ``app_ticket`` of the app and when it was received (ms), if any."""
        with self._lock:
            row = self._db.execute(
                "select ticket, received_at_ms from app_tickets where app_id = ?", (app_id,)
            ).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def tenants(self) -> dict[str, TenantStatus]:
        """Every tenant the events told of, and its latest status."""
        with self._lock:
            rows = self._db.execute("select tenant_key, status from tenants order by tenant_key").fetchall()
        return {str(key): status for key, status in rows}

    def receiver_alive(self, within_seconds: float, receiver: str = "listen") -> bool:
        with self._lock:
            row = self._db.execute(
                "select heartbeat_ms from receivers where name = ?", (receiver,)
            ).fetchone()
        return bool(row) and _now_ms() - int(row[0]) <= within_seconds * 1000
