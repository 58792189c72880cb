"""The Arrow columns built without ``pa.array`` equal what ``pa.array`` makes of the same values,
and refuse what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from feishu_tasks import arrow_columns
from feishu_tasks.rows import FOLLOWERS_SCHEMA, STATUS_SCHEMA

TIMESTAMP = pa.timestamp("us", tz="UTC")
EIGHT_HOURS_EAST = timezone(timedelta(hours=8))

CASES: list[tuple[list[Any], pa.DataType]] = [
    ([], pa.string()),
    (["ou_1", "ou_2", ""], pa.string()),
    (["a", None, "b", None, None, "c", "d", "e", "f"], pa.string()),  # nulls across a byte of the bitmap
    (["日本語", "é", None, "ascii", "🙂"], pa.string()),  # multi-byte UTF-8: offsets in bytes
    ([None, None], pa.string()),
    ([0, 1, -(2**63), 2**63 - 1, None], pa.int64()),
    ([True, False, None, True, True, False, False, True, True, False], pa.bool_()),
    ([], pa.bool_()),
    (
        [
            datetime(2026, 12, 4, 12, 40, 1, 123456, tzinfo=UTC),
            datetime(2026, 12, 4, 20, 40, tzinfo=EIGHT_HOURS_EAST),  # converted to UTC, as pyarrow does
            datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch
            datetime(2026, 1, 1, 0, 0),  # naive: taken as UTC, as pyarrow does
            None,
        ],
        TIMESTAMP,
    ),
]


@pytest.mark.parametrize(("values", "arrow_type"), CASES)
def test_each_column_equals_what_pa_array_makes(values: list[Any], arrow_type: pa.DataType) -> None:
    built = arrow_columns.column(values, arrow_type)
    built.validate(full=True)
    assert built.type == arrow_type
    assert built.null_count == values.count(None)
    assert built.equals(pa.array(values, arrow_type))


def test_a_long_column_of_ids_equals_pa_array() -> None:
    values = [f"ou_{i:x}" if i % 7 else None for i in range(100_003)]
    assert arrow_columns.string_array(values).equals(pa.array(values, pa.string()))


@pytest.mark.parametrize(("value", "count"), [("open_id", 3), ("", 4), ("日本", 2), ("x", 0)])
def test_a_repeated_string(value: str, count: int) -> None:
    built = arrow_columns.repeated_string(value, count)
    built.validate(full=True)
    assert built.equals(pa.array([value] * count, pa.string()))


def test_strings_past_two_gib_are_chunked_not_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrow_columns, "MAX_OFFSET", 10)  # the 2 GiB bound, made small
    values = ["abcd", "efgh", None, "ijkl", "mn"]
    built = arrow_columns.string_array(values)
    assert isinstance(built, pa.ChunkedArray) and built.num_chunks > 1
    built.validate(full=True)
    assert built.combine_chunks().equals(pa.array(values, pa.string()))


@pytest.mark.parametrize(
    ("values", "arrow_type", "error"),
    [
        (["ok", 5], pa.string(), TypeError),
        (["lone \ud800 surrogate"], pa.string(), UnicodeEncodeError),
        ([2**63], pa.int64(), OverflowError),
        (["1"], pa.int64(), TypeError),
        ([1], pa.bool_(), TypeError),
        (["2026-12-04"], TIMESTAMP, TypeError),
    ],
)
def test_what_pa_array_refuses_is_refused(values: list[Any], arrow_type: pa.DataType, error: type) -> None:
    with pytest.raises((pa.ArrowException, TypeError, ValueError, OverflowError)):
        pa.array(values, arrow_type)  # the reference refuses it too (with its own exception)
    with pytest.raises(error):
        arrow_columns.column(values, arrow_type)


def test_tables_follow_the_schema_with_missing_keys_as_nulls() -> None:
    followers = {
        "task_id": ["t1", "t1"],
        "follower_id": ["ou_1", "ou_2"],
        "user_id_type": ["open_id", "open_id"],
        "member_type": ["user", None],
        "_dlt_id": ["a" * 14, "b" * 14],
        "_tombstone": [False, False],
    }
    built = arrow_columns.table(followers, FOLLOWERS_SCHEMA)
    assert built.equals(pa.table(followers, schema=FOLLOWERS_SCHEMA))

    rows = [{"task_id": "t1", "status": "ok", "pages": 1}, {"task_id": "t2", "status": "failed"}]
    assert arrow_columns.table_from_rows(rows, STATUS_SCHEMA).equals(
        pa.Table.from_pylist(rows, schema=STATUS_SCHEMA)
    )
