"""The memory budget: one figure (``--memory-budget``) that sets everything a run's memory follows.

A run's process holds the interpreter and its libraries, the fetch (its per-task state and the
batches in flight), and DuckDB. Only the last one can be told a limit, and only what depends on
the tenant's size must be bounded for the process to stay flat: so the budget sets

- DuckDB's ``memory_limit``, a quarter of the budget (never under ``MIN_DUCKDB``): DuckDB keeps
  to it by spilling to disk (``<file>.tmp`` beside the database) instead of failing, as long
  as every statement can spill (see ``history.py`` and ``relations.declares_primary_keys``);
- DuckDB's ``threads``: one below ``TWO_THREADS_FROM``, since each thread's hash tables and
  buffers come out of the same limit and a second core is busy fetching anyway;
- ``preserve_insertion_order = false``: no table of ours has an order, and DuckDB then
  streams inserts instead of keeping them in order in memory;
- the size of a part (``rows_per_load``): each part is one dlt load, and the merge and the
  history of a part hold hash tables of its rows; so parts shrink with the budget.

``--duckdb-memory-limit`` and ``rows_per_load`` still override their share. Measured in
BENCHMARKS.md (``bench/load_only.py``, ``bench/scale.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MiB = 2**20
DEFAULT_BUDGET = "256MB"
MIN_BUDGET = 128 * MiB  # below it DuckDB's share could not hold a part's merge
MIN_DUCKDB = 48 * MiB  # the merge and history of a part spill fine down to here (bench/load_only.py)
TWO_THREADS_FROM = 512 * MiB  # DuckDB's memory_limit from which a second thread pays off
ROWS_PER_DUCKDB_MIB = 4_000  # part size: 64 MiB of DuckDB → 256,000 follower rows

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": MiB, "gib": 2**30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """Bytes of ``256MB``, ``1.5GB``, ``512MiB`` (DuckDB's units: MB is 10^6, MiB 2^20)."""
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(value)
    number, unit = float(match[1]), (match[2] or "").lower()
    if not unit:
        raise ValueError(value)  # a bare number is too easy to get wrong by 10^6
    return int(number * _UNITS[unit])


def duckdb_size(size: int) -> str:
    """``size`` as DuckDB reads it, in whole MiB."""
    return f"{max(1, size // MiB)}MiB"


@dataclass(frozen=True)
class MemoryPlan:
    """What the budget sets: DuckDB's settings and the size of a part."""

    budget: int
    duckdb_memory_limit: int
    rows_per_part: int | None  # None: the whole run in one load

    @property
    def duckdb_threads(self) -> int:
        return 2 if self.duckdb_memory_limit >= TWO_THREADS_FROM else 1

    def duckdb_settings(self) -> dict[str, Any]:
        """DuckDB's global settings for every connection dlt opens to the file."""
        return {
            "memory_limit": duckdb_size(self.duckdb_memory_limit),
            "threads": self.duckdb_threads,
            "preserve_insertion_order": False,
        }


def plan_memory(
    budget: str, duckdb_memory_limit: str | None = None, rows_per_load: int | None = None
) -> MemoryPlan:
    """The plan for ``budget`` (checked by the caller: a size of at least ``MIN_BUDGET``).

    An explicit DuckDB limit, or part size (``rows_per_load``; 0 = one load), wins over the
    budget's share of it.
    """
    total = parse_size(budget)
    limit = parse_size(duckdb_memory_limit) if duckdb_memory_limit else max(MIN_DUCKDB, total // 4)
    if rows_per_load is None:
        rows: int | None = max(1, limit // MiB) * ROWS_PER_DUCKDB_MIB
    else:
        rows = rows_per_load or None
    return MemoryPlan(total, limit, rows)
