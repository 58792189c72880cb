"""Query results as DataFrames with the same dtypes whatever the destination's driver.

psycopg2 and DuckDB hand back the same Python values except for details (a UTC timestamp's
tzinfo class, for one), and DuckDB's own ``fetch_df`` picks dtypes that a row-based driver
cannot reproduce. So every destination goes through rows here, and each column gets the
dtype DuckDB's ``fetch_df`` would give it: timestamps ``datetime64[us, UTC]``, dates
``datetime64[us]``, intervals ``timedelta64[us]``, integers ``int64`` (``Int64`` with nulls).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd


def to_frame(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """A DataFrame of ``rows`` with driver-independent dtypes."""
    return pd.DataFrame(
        {name: _series([row[i] for row in rows]) for i, name in enumerate(columns)},
        columns=list(columns),
    )


def _series(values: list[Any]) -> pd.Series:
    present = [value for value in values if value is not None]
    kinds = {type(value) for value in present}
    if not present:
        return pd.Series(values, dtype=object)
    if all(issubclass(kind, datetime) for kind in kinds):
        if all(value.tzinfo is not None for value in present):
            return pd.Series(pd.to_datetime(values, utc=True)).astype("datetime64[us, UTC]")
        return pd.Series(pd.to_datetime(values)).astype("datetime64[us]")
    if all(issubclass(kind, date) for kind in kinds):
        return pd.Series(pd.to_datetime(values)).astype("datetime64[us]")
    if all(issubclass(kind, timedelta) for kind in kinds):
        return pd.Series(pd.to_timedelta(values)).astype("timedelta64[us]")
    if all(issubclass(kind, int) and not issubclass(kind, bool) for kind in kinds):
        return pd.Series(values, dtype="Int64" if len(present) < len(values) else "int64")
    if all(issubclass(kind, (Decimal, float, int)) and not issubclass(kind, bool) for kind in kinds):
        return pd.Series([None if value is None else float(value) for value in values], dtype="float64")
    return pd.Series(values)
