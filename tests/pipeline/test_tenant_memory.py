"""The shares of memory that many tenants in one process split (``tenant_memory``)."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.utils import get_resolved_traces
from dlt.common.data_writers.buffered import BufferedDataWriter

from feishu_followers.tenant_memory import (
    MIN_BATCH_ROWS,
    SHARED_BATCH_ROWS,
    batch_rows,
    keep_resolved_config_traces,
    release_dlt_contexts,
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


def lookups_logged(monkeypatch: pytest.MonkeyPatch, lean: bool) -> tuple[list[str], int]:
    """In a fresh thread, dlt's writer configuration (one field set, the others not): the resolved
    keys dlt's trace would read, and how many lookups the thread's log holds in all."""
    monkeypatch.setenv("DATA_WRITER__BUFFER_MAX_ITEMS", "7")
    logged: dict[str, Any] = {}

    def look_up() -> None:
        if lean:
            keep_resolved_config_traces()
        assert extract_buffer() == 7
        log = get_resolved_traces()
        logged["resolved"] = [trace.key for trace in log.resolved_traces]
        logged["all"] = len(log.all_traces)

    thread = threading.Thread(target=look_up)
    thread.start()
    thread.join()
    return logged["resolved"], logged["all"]


def test_a_tenants_thread_logs_only_the_lookups_dlts_trace_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved, everything = lookups_logged(monkeypatch, lean=False)
    assert resolved == ["buffer_max_items"] and everything > 1  # dlt's: every field, every section
    assert lookups_logged(monkeypatch, lean=True) == (["buffer_max_items"], 0)


@pytest.mark.parametrize("released", [False, True])
def test_a_finished_tenants_pipeline_is_not_kept_by_dlt(tmp_path: Path, released: bool) -> None:
    held: list[weakref.ref[dlt.Pipeline]] = []

    def tenant() -> None:
        pipeline = dlt.pipeline(pipeline_name=f"tenant_memory_{released}", pipelines_dir=str(tmp_path))
        held.append(weakref.ref(pipeline))
        del pipeline
        if released:
            release_dlt_contexts()

    thread = threading.Thread(target=tenant)
    thread.start()
    thread.join()
    gc.collect()
    assert (held[0]() is None) is released  # dlt keeps a thread's contexts after it ends
