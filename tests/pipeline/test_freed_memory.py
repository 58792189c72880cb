"""``follow`` hands the memory a batch freed back to the system (glibc keeps it otherwise)."""

from __future__ import annotations

import ctypes
import json
import platform
import subprocess
import sys

import pytest

from feishu_followers import freed_memory

# In a process of its own: a thread allocates ~200 MB in 2 KB blocks (each a malloc, in the thread's
# arena), keeps every 50th and frees the rest. glibc keeps the freed pages (the survivors pin them);
# release_freed_memory() must hand them back. Anonymous memory (RssAnon) before and after, in MB.
CHILD = """
import json, threading
from pathlib import Path
from feishu_followers.freed_memory import release_freed_memory

def anon():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("RssAnon:"))
    return int(line.split()[1]) / 1024

kept = []
def churn():
    blocks = [bytes(2048) for _ in range(100_000)]
    kept.extend(blocks[::50])
thread = threading.Thread(target=churn)
thread.start()
thread.join()
before = anon()
released = release_freed_memory()
print(json.dumps({"before": before, "after": anon(), "released": released}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_memory_a_batch_freed_goes_back_to_the_system() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout)
    assert figures["released"] is True
    assert figures["before"] - figures["after"] > 100, figures  # of ~200 MB freed, most is returned


def test_without_malloc_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(name: str | None) -> ctypes.CDLL:
        raise OSError("no C library here")

    freed_memory._malloc_trim.cache_clear()
    monkeypatch.setattr(freed_memory.ctypes, "CDLL", no_libc)
    try:
        assert freed_memory.release_freed_memory() is False
    finally:
        freed_memory._malloc_trim.cache_clear()
