"""The shares of memory that many tenants in one process split (``tenant_memory``)."""

from __future__ import annotations

import pytest
from dlt.common.configuration import resolve_configuration
from dlt.common.data_writers.buffered import BufferedDataWriter

from feishu_followers.tenant_memory import (
    MIN_BATCH_ROWS,
    SHARED_BATCH_ROWS,
    batch_rows,
    shared_writer_buffers,
)


def extract_buffer() -> int:
    """dlt's per-table buffer as its extract step resolves it."""
    spec = BufferedDataWriter.BufferedDataWriterConfiguration()
    config = resolve_configuration(spec, sections=("extract",))
    return int(config.buffer_max_items)


@pytest.mark.parametrize(
    ("tenants", "rows"), [(1, SHARED_BATCH_ROWS), (4, 5_000), (20, 1_000), (1_000, MIN_BATCH_ROWS)]
)
def test_each_tenant_batches_its_share_of_one_runs_rows(tenants: int, rows: int) -> None:
    assert batch_rows(tenants) == rows


def test_dlt_buffers_a_share_per_tenant_while_they_run_and_its_own_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATA_WRITER__BUFFER_MAX_ITEMS", raising=False)
    own = extract_buffer()
    with shared_writer_buffers(20):
        assert extract_buffer() == 250
    assert extract_buffer() == own
    with shared_writer_buffers(1):  # one tenant: dlt's own
        assert extract_buffer() == own


def test_a_configured_buffer_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_WRITER__BUFFER_MAX_ITEMS", "777")
    with shared_writer_buffers(20):
        assert extract_buffer() == 777
