"""The process's memory allocators, chosen for a flat RSS before any library allocates.

Most of a run's RSS is not Python objects (tracemalloc sees ~40 MB of a ~190 MB anonymous
peak in the fetch): it is what the C allocators keep after use. Two of them are told here to
keep less, only where the person running us has not chosen (BENCHMARKS.md, "The load side of
issue 19", has the figures):

- Arrow's memory pool: pyarrow's default (mimalloc) keeps freed pages for reuse; the system
  allocator hands them to glibc. pyarrow reads ``ARROW_DEFAULT_MEMORY_POOL`` once, when it is
  imported, so this must run before anything imports pyarrow (the CLI's first step).
- glibc's malloc arenas: each thread that allocates (ours, dlt's, aiohttp's, DuckDB's) may get
  an arena of its own, up to 8 per core, and freed memory in one is not reused by another.
  Two arenas cap that. glibc reads ``MALLOC_ARENA_MAX`` at the process's start only, so a
  process started without it is told through ``mallopt``, which glibc documents for this
  (arenas made after the call keep to it; only the main thread's exists this early).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
ARROW_POOL = "system"
ARENA_VARIABLE = "MALLOC_ARENA_MAX"
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number for the arena cap, from glibc's <malloc.h>


def use_lean_allocators() -> dict[str, str]:
    """Set what the user has not set; returns what was set here (for tests and ``--verbose``)."""
    chosen: dict[str, str] = {}
    if ARROW_POOL_VARIABLE not in os.environ:
        os.environ[ARROW_POOL_VARIABLE] = chosen[ARROW_POOL_VARIABLE] = ARROW_POOL
    if cap_malloc_arenas():
        chosen[ARENA_VARIABLE] = str(MALLOC_ARENAS)
    return chosen


def cap_malloc_arenas() -> bool:
    """glibc's arenas capped, unless the user set ``MALLOC_ARENA_MAX``; whether it was done here.

    Also for callers of ``run`` that did not start through the CLI (a store app's tenants, whose
    threads would each take an arena): arenas made after the call keep to it."""
    return ARENA_VARIABLE not in os.environ and _cap_malloc_arenas(MALLOC_ARENAS)


def _cap_malloc_arenas(arenas: int) -> bool:
    """glibc's ``mallopt(M_ARENA_MAX, arenas)``; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        # glibc's own symbol, looked up first: mallopt's parameter numbers differ elsewhere (musl)
        mallopt = libc.gnu_get_libc_version and libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
