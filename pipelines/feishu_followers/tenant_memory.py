"""What many tenants in one process share of memory, so that each further tenant costs little.

A tenant run alone keeps up to ``SHARED_BATCH_ROWS`` fetched rows in its batch, and dlt buffers
up to 5,000 rows per table before writing them to its file: with 20 tenants side by side, 20 times
that waited in memory for the whole fetch (a tenant of 1,000 tasks never filled either, so all its
rows did). Here the same totals are shared: each tenant batches and buffers its part of them.

Beside that, glibc's allocator gives each new thread its own arena (up to 8 per core), and freed
memory stays in the arena it came from: 20 tenants' threads each kept their own. ``MALLOC_ARENA_MAX``
caps them, but only read at start-up; ``allocators.cap_malloc_arenas`` does the same before the
tenants' threads start, and ``malloc_trim`` hands what a finished tenant freed back to the system. Both are
glibc's: elsewhere (musl, macOS) they are skipped. Measured in BENCHMARKS.md (store app).

And dlt logs every configuration lookup of a thread (``TraceLogContext``) until its pipeline's
next step ends: each ``sql_client()`` looks up every credential field under three sections, and
a tenant's thread held ~1,500 such entries through its fetch (~1.5 MB a tenant, tracemalloc:
``bench/tenant_heap.py``). ``keep_resolved_config_traces`` keeps what dlt's trace reads of them.
dlt also keeps each thread's contexts after the thread ends (its active pipeline, with schema,
state and clients, among them), so every finished tenant's pipeline stayed alive through the
other tenants' loads, and a long-lived caller (a scheduler calling ``run_tenants`` again and
again) kept every run's: ``release_dlt_contexts`` drops them when the tenant is done. (Its effect
on the 20 tenants' peak is within the bench's noise; the config log's is ~35 MB: BENCHMARKS.md.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.config_section_context import ConfigSectionContext
from dlt.common.configuration.utils import ResolvedValueTrace, TraceLogContext
from dlt.common.destination.capabilities import DestinationCapabilitiesContext
from dlt.common.pipeline import PipelineContext

SHARED_BATCH_ROWS = 20_000  # the fetch's batch of one run alone (scheduler.FetchPlan.batch_rows)
MIN_BATCH_ROWS = 500  # below it, a batch costs more in dlt's per-item overhead than it saves
SHARED_BUFFERED_ROWS = 5_000  # dlt's own buffer per table (data_writer.buffer_max_items)
MIN_BUFFERED_ROWS = 100
BUFFER_KEY = "data_writer.buffer_max_items"


def batch_rows(tenants: int) -> int:
    """Rows per fetch batch for each of ``tenants`` side by side: their sum stays one run's."""
    return max(MIN_BATCH_ROWS, SHARED_BATCH_ROWS // max(1, tenants))


@contextmanager
def shared_writer_buffers(tenants: int) -> Iterator[None]:
    """dlt's per-table buffer, shared by ``tenants``, unless the configuration sets its own."""
    if tenants <= 1 or dlt.config.get(BUFFER_KEY) is not None:
        yield
        return
    with dlt.config.values({BUFFER_KEY: max(MIN_BUFFERED_ROWS, SHARED_BUFFERED_ROWS // tenants)}):
        yield


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def return_freed_memory() -> None:
    """Give the pages a finished tenant freed back to the system (its own heap stays in its arena
    otherwise). No ``gc.collect()``: a full collection holds the GIL for the other tenants' fetches."""
    if (libc := _glibc()) is not None:
        libc.malloc_trim(0)  # ctypes releases the GIL for the call


class _ResolvedTracesOnly(TraceLogContext):
    """dlt's log of one thread's configuration lookups, keeping the resolved ones only.

    dlt copies the resolved lookups into its pipeline trace (``resolved_config_values``) when a
    step ends; every lookup also goes to ``all_traces``, which nothing in dlt reads: mostly the
    unset credential fields (host, port, …) of every ``sql_client()``, looked up in three sections.
    """

    def log(self, trace: ResolvedValueTrace) -> None:
        if self.logging_enabled and trace.is_resolved():
            self.resolved_traces.append(trace)


def keep_resolved_config_traces() -> None:
    """In the calling thread (dlt keeps one log per thread): log only what dlt's trace reads."""
    Container()[TraceLogContext] = _ResolvedTracesOnly()


# The contexts dlt sets in a thread that runs a pipeline (``Container().thread_contexts``)
THREAD_CONTEXTS = (PipelineContext, TraceLogContext, DestinationCapabilitiesContext, ConfigSectionContext)


def release_dlt_contexts() -> None:
    """Drop the calling thread's dlt contexts: dlt keeps them, keyed by thread id, after the thread
    ends, and the pipeline context holds the thread's last pipeline (and its activation history)."""
    container = Container()
    for spec in THREAD_CONTEXTS:
        if spec in container:
            del container[spec]
