"""The memory budget's arithmetic: what one figure sets (budget.py)."""

from __future__ import annotations

import duckdb
import pytest

from feishu_followers.budget import MiB, parse_size, plan_memory
from feishu_followers.errors import explain_failure
from feishu_followers.options import RunOptions
from feishu_tasks.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "size"),
    [("256MB", 256 * 10**6), ("256MiB", 256 * MiB), ("1.5GB", 1_500_000_000), (" 2gib ", 2 * 2**30)],
)
def test_sizes_read_as_duckdb_reads_them(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["256", "lots", "-1MB", "1TB", ""])
def test_what_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_the_default_budget_gives_duckdb_a_quarter_and_one_thread() -> None:
    plan = RunOptions().memory
    expected = {"memory_limit": "61MiB", "threads": 1, "preserve_insertion_order": False}
    assert plan.duckdb_settings() == expected
    assert plan.rows_per_part == 61 * 4_000


def test_a_small_budget_keeps_duckdb_at_its_floor_and_a_big_one_gets_two_threads() -> None:
    assert plan_memory("128MB").duckdb_memory_limit == 48 * MiB
    big = plan_memory("4GB")
    assert big.duckdb_threads == 2 and big.duckdb_memory_limit == 10**9


@pytest.mark.parametrize(("rows_per_load", "part"), [(0, None), (150, 150), (None, 64 * 4_000)])
def test_explicit_settings_win_over_the_budget(rows_per_load: int | None, part: int | None) -> None:
    plan = plan_memory("256MB", duckdb_memory_limit="64MiB", rows_per_load=rows_per_load)
    assert plan.duckdb_memory_limit == 64 * MiB and plan.rows_per_part == part


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("memory_budget", "64MB", "--memory-budget"),
        ("memory_budget", "big", "SOURCES__FEISHU_TASKS__MEMORY_BUDGET"),
        ("duckdb_memory_limit", "1 gig", "--duckdb-memory-limit"),
    ],
)
def test_a_budget_that_cannot_be_kept_is_one_line_naming_the_key(field: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _ = RunOptions(**{field: value}).memory
    assert named in str(raised.value)


def test_duckdb_out_of_memory_names_the_options_that_give_it_more() -> None:
    error = duckdb.OutOfMemoryException(
        "Out of Memory Error: could not allocate block of size 256.0 KiB (244.1 MiB/244.1 MiB used)\n\n"
        "Possible solutions:\n* Reducing the number of threads (SET threads=X)"
    )
    line = explain_failure(error)
    assert line is not None and "\n" not in line
    assert "--memory-budget" in line and "244.1 MiB/244.1 MiB used" in line
