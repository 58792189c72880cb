"""A worker of a fixed size, as a scheduler's container is: a memory cgroup with a hard limit.

``bench/scale.py --worker-mb N`` and ``bench/tenants_bench.py --worker-mb N`` run the CLI in one:
the kernel counts what a container's limit counts (the process's memory and the page cache it
reads and dirties, which it reclaims under the limit) and kills the run if it cannot fit. Needs
root and the cgroup v1 or v2 memory controller.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from pathlib import Path
from typing import Any


class Worker:
    """A memory cgroup with a hard limit, one per CLI run (``--worker-mb``)."""

    limit_mb: int | None = None  # set by --worker-mb

    def __init__(self) -> None:
        name = f"feishu-bench-{os.getpid()}-{time.monotonic_ns()}"
        v1 = Path("/sys/fs/cgroup/memory")
        self.v2 = not (v1 / "memory.limit_in_bytes").exists()
        self.path = (Path("/sys/fs/cgroup") if self.v2 else v1) / name
        self.path.mkdir()
        limit = str(int(self.limit_mb or 0) * 1024 * 1024)
        if self.v2:
            (self.path / "memory.max").write_text(limit)
            (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(limit)
            swap = self.path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(limit)

        # Pages already cached (the libraries, read by an earlier run) are charged to whoever read
        # them first: dropped here, the run reads its libraries anew and they count, as in a fresh
        # container. Pages mapped by running processes stay (the simulator maps none of DuckDB's).
        Path("/proc/sys/vm/drop_caches").write_text("1")

    def enter(self) -> None:
        """In the child, before exec: the run and all it starts belong to the cgroup."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def figures(self) -> dict[str, Any]:
        def read(name: str) -> str:
            target = self.path / name
            return target.read_text() if target.exists() else ""

        if self.v2:
            events = dict(line.split() for line in read("memory.events").splitlines())
            peak = int(read("memory.peak") or 0)
            hits, kills = int(events.get("max", 0)), int(events.get("oom_kill", 0))
        else:
            control = dict(line.split() for line in read("memory.oom_control").splitlines())
            peak = int(read("memory.max_usage_in_bytes") or 0)
            hits, kills = int(read("memory.failcnt") or 0), int(control.get("oom_kill", 0))
        return {"limit_mb": self.limit_mb, "peak_mb": peak / 2**20, "limit_hits": hits, "oom_kills": kills}

    def remove(self) -> None:
        with suppress(OSError):
            self.path.rmdir()
