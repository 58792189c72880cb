"""Arrow columns built from Python lists without ``pa.array``, which would import pandas.

Why not ``pa.array``: before converting a list, pyarrow asks whether it is a pandas object
(``_is_array_like`` in pyarrow's ``array.pxi``, also reached from ``pa.table``,
``Table.from_pylist`` and ``pa.scalar``), and that question imports pandas: +37–53 MB of RSS
in a run that has no use for pandas (BENCHMARKS.md, "The load side of issue 19"). Arrow's
documented ``Array.from_buffers`` asks nothing: the buffers are laid out here, in Arrow's
format (validity bitmaps, 32-bit offsets and UTF-8 bytes for strings, little-endian values),
with C-speed steps (``str.join``, ``str.encode``, ``array.array``, ``int.to_bytes``).

What a value may be is what ``pa.array`` accepts for the registry's four types, and a value
it would refuse is refused here too (``TypeError``, ``UnicodeEncodeError`` for a lone
surrogate, ``OverflowError`` past 64 bits): a naive ``datetime`` is taken as UTC, as pyarrow
takes it. ``tests/source/test_arrow_columns.py`` checks every builder against ``pa.array``.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

import pyarrow as pa

MAX_OFFSET = 2**31 - 1  # a ``string`` array's offsets are int32: longer data goes in chunks
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_BITS = bytes.maketrans(b"\x00\x01", b"01")


def _bitmap(flags: Sequence[bool]) -> pa.Buffer:
    """Arrow's bitmap of ``flags`` (bit i of the buffer is flag i, least significant bit first)."""
    if not flags:
        return pa.py_buffer(b"")
    digits = bytes(map(bool, flags)).translate(_BITS).decode("ascii")
    return pa.py_buffer(int(digits[::-1], 2).to_bytes((len(flags) + 7) // 8, "little"))


def _validity(values: Sequence[Any]) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap and null count of ``values`` (no bitmap when none is null)."""
    nulls = values.count(None)
    if not nulls:
        return None, 0
    return _bitmap([value is not None for value in values]), nulls


def string_array(values: Sequence[Any]) -> pa.Array | pa.ChunkedArray:
    """A ``string`` array; a ChunkedArray only past 2 GiB of text (int32 offsets)."""
    validity, nulls = _validity(values)
    texts: Sequence[Any] = [value if value is not None else "" for value in values] if nulls else values
    joined = "".join(texts)  # TypeError on anything but str, as pa.array refuses it
    data = joined.encode("utf-8")  # UnicodeEncodeError on a lone surrogate, as pa.array
    if len(data) > MAX_OFFSET:
        half = len(values) // 2
        if half == 0:
            raise ValueError("a string longer than 2 GiB does not fit Arrow's string type")
        chunks = [string_array(values[:half]), string_array(values[half:])]
        return pa.chunked_array([c for part in chunks for c in _chunks(part)], pa.string())
    if len(data) == len(joined):  # ASCII: a string's byte length is its length
        lengths: Any = map(len, texts)
    else:
        lengths = (len(text.encode("utf-8")) for text in texts)
    offsets = array("i", accumulate(lengths, initial=0))
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string(), len(values), buffers, null_count=nulls)


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def repeated_string(value: str, count: int) -> pa.Array:
    """``count`` times the same string (a common column, the load id) without a list of them."""
    data = value.encode("utf-8")
    if len(data) * count > MAX_OFFSET:
        return string_array([value] * count)  # chunked
    offsets = array("i", range(0, len(data) * count + 1, len(data)) if data else [0] * (count + 1))
    return pa.Array.from_buffers(
        pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data * count)]
    )


def int64_array(values: Sequence[Any]) -> pa.Array:
    validity, nulls = _validity(values)
    numbers = array("q", [value if value is not None else 0 for value in values] if nulls else values)
    return pa.Array.from_buffers(pa.int64(), len(values), [validity, pa.py_buffer(numbers)], null_count=nulls)


def bool_array(values: Sequence[Any]) -> pa.Array:
    validity, nulls = _validity(values)
    for value in values:
        if value is not None and type(value) is not bool:
            raise TypeError(f"expected a bool, got {type(value).__name__}")
    bits = _bitmap([bool(value) for value in values])
    return pa.Array.from_buffers(pa.bool_(), len(values), [validity, bits], null_count=nulls)


def _microseconds(value: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is UTC (pyarrow's reading of it)."""
    if type(value) is not datetime:
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MICROSECOND


def timestamp_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """A ``timestamp('us', tz=...)`` array (the registry's one timestamp type)."""
    if arrow_type.unit != "us":
        raise ValueError(f"only microsecond timestamps are built here, not {arrow_type}")
    validity, nulls = _validity(values)
    numbers = array("q", [_microseconds(value) if value is not None else 0 for value in values])
    return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(numbers)], null_count=nulls)


_BUILDERS: dict[pa.DataType, Callable[[Sequence[Any]], pa.Array | pa.ChunkedArray]] = {
    pa.string(): string_array,
    pa.int64(): int64_array,
    pa.bool_(): bool_array,
}


def column(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """The array of ``values`` of type ``arrow_type`` (one of the registry's four types)."""
    if pa.types.is_timestamp(arrow_type):
        return timestamp_array(values, arrow_type)
    return _BUILDERS[arrow_type](values)


def table(columns: Mapping[str, Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """``pa.table(columns, schema=schema)``, without pandas."""
    return pa.Table.from_arrays([column(columns[f.name], f.type) for f in schema], schema=schema)


def table_from_rows(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """``pa.Table.from_pylist(rows, schema=schema)``, without pandas (a missing key is null)."""
    return table({name: [row.get(name) for row in rows] for name in schema.names}, schema)
