"""The runner's small decisions, one table each: option parsing, error lines, waiting, admission."""

from __future__ import annotations

import errno
from datetime import timedelta

import duckdb
import pytest

from feishu_followers.errors import explain_failure
from feishu_followers.options import parsed
from feishu_followers.signals import StopRequest
from feishu_followers.waiting import DestinationBusy, busy_reason, wait_while_busy
from feishu_tasks.errors import ConfigError, FatalError
from feishu_tasks.scheduler import Admission
from feishu_tasks.task_ids import MAX_INVALID_ID_CHARS, task_key, unique_in_order

UUID = "0d38e26e-190a-49e9-93a2-35067763ed1f"
BUSY = duckdb.IOException(
    'IO Error: Could not set lock on file "/x.duckdb": Conflicting lock is held in /usr/bin/python3 '
    "(PID 4242). However, you would be able to open this database in read-only mode"
)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("discover", "true", True),
        ("discover", "0", False),
        ("discover", False, False),
        ("quiet", "yes", True),
        ("max_requests", "45000", 45000),
        ("max_requests", 12, 12),
        ("rows_per_load", "0", 0),
        ("stale_after", "6h", timedelta(hours=6)),
        ("lock_timeout", "5m", 300.0),
        ("discover_lookback", "1d", 86400.0),
    ],
)
def test_run_options_parse(name: str, value: object, expected: object) -> None:
    assert parsed(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("discover", "maybe", "SOURCES__FEISHU_TASKS__DISCOVER"),
        ("max_requests", "abc", "SOURCES__FEISHU_TASKS__MAX_REQUESTS"),
        ("max_requests", "-5", "--max-requests"),
        ("stale_after", "soon", "sources.feishu_tasks.stale_after"),
        ("lock_timeout", "", "expected a duration"),
    ],
)
def test_run_options_reject_with_the_key(name: str, value: object, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parsed(name, value)
    assert named in str(raised.value) and repr(value) in str(raised.value)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (FatalError("check base_url"), "check base_url"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.duckdb"), "the disk is full"),
        (duckdb.IOException("IO Error: Could not write: No space left on device"), "the disk is full"),
        (duckdb.CatalogException("Catalog Error: Table x does not exist"), "DuckDB failed: Catalog Error"),
    ],
)
def test_known_failures_become_one_line(error: Exception, line: str) -> None:
    explained = explain_failure(error)
    assert explained is not None and line in explained and "\n" not in explained


def test_a_failing_rollback_does_not_hide_the_full_disk() -> None:
    """The error handler's own failure must not mask the error it handles."""
    try:
        try:
            raise duckdb.IOException("IO Error: No space left on device")
        except duckdb.Error:
            raise duckdb.TransactionException("cannot rollback - no transaction is active") from None
    except duckdb.Error as exc:
        explained = explain_failure(exc)
    assert explained is not None and explained.startswith("the disk is full")


def test_unknown_errors_are_left_to_the_caller() -> None:
    assert explain_failure(ValueError("a bug")) is None


def test_busy_reason_names_the_holder() -> None:
    assert busy_reason(BUSY) == "held by PID 4242 (/usr/bin/python3)"
    assert busy_reason(duckdb.IOException("IO Error: disk on fire")) is None


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waiting_retries_a_busy_file_until_it_is_free() -> None:
    time, said, tries = FakeTime(), [], []

    def step() -> str:
        tries.append(time.now)
        if time.now < 3:
            raise BUSY
        return "done"

    assert wait_while_busy(step, "loading", 10, said.append, clock=time.clock, sleep=time.sleep) == "done"
    assert len(said) == 1 and "waiting up to 10 s" in said[0] and "PID 4242" in said[0]
    assert tries == [0, 1, 2, 3]


def test_waiting_is_bounded_and_other_errors_pass_through() -> None:
    time = FakeTime()

    def busy() -> None:
        raise BUSY

    with pytest.raises(DestinationBusy, match="still held after 5 s"):
        wait_while_busy(busy, "loading", 5, lambda _: None, clock=time.clock, sleep=time.sleep)
    assert time.now == 5
    with pytest.raises(ZeroDivisionError):
        wait_while_busy(lambda: 1 / 0, "x", 5, lambda _: None, clock=time.clock, sleep=time.sleep)


def test_a_stop_request_ends_the_wait() -> None:
    time = FakeTime()

    def busy() -> None:
        raise BUSY

    with pytest.raises(DestinationBusy, match="a stop was requested"):
        wait_while_busy(
            busy, "x", 300, lambda _: None, stopping=lambda: time.now >= 2, clock=time.clock, sleep=time.sleep
        )
    assert time.now == 2


@pytest.mark.parametrize(("signals", "code"), [([15], 143), ([2], 130), ([15, 2], 143)])
def test_exit_code_follows_the_first_signal(signals: list[int], code: int) -> None:
    assert StopRequest(signals).exit_code == code


@pytest.mark.parametrize(
    ("cap", "costs", "admitted"),
    [
        (None, [5, 5, 5], [True, True, True]),
        (10, [4, 4, 4], [True, True, False]),
        (10, [20, 1], [True, False]),  # a task bigger than the cap still gets its turn, first
        (10, [4, 7, 1], [True, False, False]),  # once one does not fit, later ones wait too
    ],
)
def test_admission_under_max_requests(cap: int | None, costs: list[int], admitted: list[bool]) -> None:
    admission = Admission(cap)
    assert [admission.admit(cost) for cost in costs] == admitted


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (f"  {UUID.upper()} ", UUID),
        ("not-a-task", "not-a-task"),
        ("x" * 300, "x" * MAX_INVALID_ID_CHARS),
    ],
)
def test_task_key(raw: str, key: str) -> None:
    assert task_key(raw) == key


def test_ids_are_deduplicated_by_their_stored_key() -> None:
    raw = [UUID, UUID.upper(), "x" * 250 + "a", "x" * 250 + "b", "", "  ", "bad"]
    assert list(unique_in_order(raw)) == [UUID, "x" * MAX_INVALID_ID_CHARS, "bad"]
