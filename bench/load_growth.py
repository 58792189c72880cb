"""What grows with each load (issue 19): many dlt loads into DuckDB in one process, sampled per load.

A process that makes many loads into one DuckDB file (``run`` of a big tenant in parts,
``follow`` with its micro-batches) was seen to grow by ~1 MB of anonymous memory per load. This
script makes such a process and, after each load and its history, samples what could hold it:
VmRSS and RssAnon (``/proc/self/status``), glibc's heap (``mallinfo2``: bytes in its arenas,
in use, free, and in ``mmap``ed chunks), Arrow's pool, DuckDB's own memory (``duckdb_memory()``,
when a connection is held), the threads and whether the DuckDB file is open between loads.

Each variant runs in a child process of its own, on the same rows, one after the other:

    python bench/load_growth.py                                   # every variant, generated rows
    python bench/load_growth.py --variant base --variant held     # some of them
    python bench/load_growth.py --run --tasks 100000 --rows-per-load 30000   # feishu-followers run
                                                                  # against the simulator instead

By default the rows are generated (``bench/load_only.py``'s parts: no HTTP, the source's Arrow
tables, dlt's merge, ``after_load``), so only the load side runs; ``--run`` drives the real
``feishu_followers.run.run`` against the simulator (the fetch too), sampling after each part.
Figures go to ``bench/results/load-growth-*.json`` and a table per variant to stdout: the
growth per load is the least-squares slope of RssAnon over the loads after the first quarter.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MB = 2**20

# name → what the child does differently (see ``Child``); "base" is the code as it is.
VARIANTS = {
    "base": "the code as it is",
    "held": "one DuckDB connection held for the whole process (as follow does per batch)",
    "held-checkpoint": "held, and CHECKPOINT after each load",
    "trim": "malloc_trim(0) after each load (sampled after it)",
    "arena1": "glibc capped at 1 malloc arena instead of 2",
    "mmap-threshold": "glibc's mmap threshold fixed at 128 KiB (no dynamic raise)",
    "no-file-cache": "DuckDB's enable_external_file_cache = false",
    "python-malloc": "PYTHONMALLOC=malloc: Python's objects from glibc, not CPython's arenas",
    "jemalloc-bg": "DuckDB's allocator_background_threads = true (jemalloc purges freed pages itself)",
    "flush-16mb": "DuckDB's allocator_flush_threshold = 16MB (instead of 128MB)",
    "checkpoint-threshold": "DuckDB's checkpoint_threshold = 1GB (no automatic checkpoints)",
}


# ---------------------------------------------------------------------------- what a sample reads
class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost",
        )
    ]  # fmt: skip


LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)
LIBC.mallinfo2.restype = MallInfo2
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8


def status() -> dict[str, int]:
    """VmRSS, RssAnon (KiB → MB) and Threads of this process."""
    figures = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon"):
            figures[key] = int(line.split()[1]) // 1024
        elif key == "Threads":
            figures[key] = int(line.split()[1])
    return figures


def open_fds(path: Path) -> int:
    """How many of this process's file descriptors are the DuckDB file (0: the database is closed)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with suppress(OSError):  # closed since it was listed
            count += os.readlink(fd) == str(path)
    return count


def anon_mappings() -> dict[str, float]:
    """Resident anonymous memory (MB) of glibc's main heap (``[heap]``, grown by ``brk``) and of
    every other anonymous mapping (``/proc/self/smaps``): CPython's object arenas, glibc's thread
    arenas and big chunks, thread stacks, and what libraries ``mmap`` themselves. (Neighbouring
    mappings are merged by the kernel, so their sizes do not tell them apart.)"""
    kinds = {"brk_heap": 0.0, "mmap_anon": 0.0}
    kind = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's first line
            name = head[5] if len(head) > 5 else ""
            kind = "brk_heap" if name == "[heap]" else "" if name else "mmap_anon"
        elif head[0] == "Anonymous:" and kind:
            kinds[kind] += int(head[1]) / 1024
    return {name: round(value, 1) for name, value in kinds.items()}


def pymalloc_arenas() -> int:
    """CPython's object arenas in use (``sys._debugmallocstats``, printed to fd 2)."""
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("# arenas allocated current"):
                return int(line.split("=")[1].replace(",", ""))
    return -1


def sample(load: int, db: Path, held: Any) -> dict[str, Any]:
    import pyarrow as pa

    info = LIBC.mallinfo2()
    figures: dict[str, Any] = {"load": load, "at": time.monotonic(), **status()}
    figures |= {
        "heap_mb": round((info.arena + info.hblkhd) / MB, 1),  # glibc: arenas + mmapped chunks
        "in_use_mb": round((info.uordblks + info.hblkhd) / MB, 1),
        "free_mb": round(info.fordblks / MB, 1),
        "mmapped_mb": round(info.hblkhd / MB, 1),
        "arrow_mb": round(pa.total_allocated_bytes() / MB, 1),
        "db_open": open_fds(db),
        "py_blocks": sys.getallocatedblocks(),
        "py_arenas": pymalloc_arenas(),
        **anon_mappings(),
    }
    if held is not None:
        rows = held.execute(
            "select tag, memory_usage_bytes from duckdb_memory() where memory_usage_bytes > 0"
        ).fetchall()
        figures["duckdb_mb"] = round(sum(row[1] for row in rows) / MB, 1)
        figures["duckdb_tags"] = {tag: round(used / MB, 1) for tag, used in rows}
    return figures


# ---------------------------------------------------------------------------- the child: one variant
class Child:
    """One variant's process: its levers, its samples."""

    def __init__(self, variant: str, db: Path) -> None:
        self.variant, self.db = variant, db
        self.samples: list[dict[str, Any]] = []
        self.held: Any = None
        self.first_snapshot: Any = None

    def allocators(self) -> None:
        """Before anything imports pyarrow (as the CLI's first step)."""
        if self.variant == "arena1":
            os.environ["MALLOC_ARENA_MAX"] = "1"
            LIBC.mallopt(M_ARENA_MAX, 1)
        if self.variant == "mmap-threshold":
            LIBC.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        from feishu_followers.allocators import use_lean_allocators

        use_lean_allocators()

    def duckdb_settings(self) -> dict[str, Any]:
        return {
            "no-file-cache": {"enable_external_file_cache": False},
            "jemalloc-bg": {"allocator_background_threads": True},
            "flush-16mb": {"allocator_flush_threshold": "16MB"},
            "checkpoint-threshold": {"checkpoint_threshold": "1GB"},
        }.get(self.variant, {})

    def patch_settings(self) -> None:
        from feishu_followers.budget import MemoryPlan

        extra, plain = self.duckdb_settings(), MemoryPlan.duckdb_settings
        if extra:
            MemoryPlan.duckdb_settings = lambda plan: {**plain(plan), **extra}  # type: ignore[method-assign]

    @contextmanager
    def holding(self) -> Iterator[None]:
        if not self.variant.startswith("held"):
            yield
            return
        import duckdb

        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.held = duckdb.connect(str(self.db))
        try:
            yield
        finally:
            self.held.close()
            self.held = None

    def after_load(self) -> None:
        self.traced()
        if self.variant == "held-checkpoint":
            self.held.execute("checkpoint")
        if self.variant == "trim":
            LIBC.malloc_trim(0)
        self.samples.append(sample(len(self.samples), self.db, self.held))  # 0 is before the first
        last = self.samples[-1]
        print(
            f"  load {last['load']:3}: RSS {last['VmRSS']} anon {last['RssAnon']} heap {last['heap_mb']} "
            f"in use {last['in_use_mb']} pyarenas {last['py_arenas']} blocks {last['py_blocks']} "
            f"{ {k: last.get(k) for k in ('brk_heap', 'mmap_anon')} } "
            f"DuckDB {last.get('duckdb_mb', '-')} open {last['db_open']}",
            file=sys.stderr,
            flush=True,
        )

    trace_at: tuple[int, int] | None = None  # --tracemalloc: (first, last) load to compare

    def traced(self) -> None:
        """With ``--tracemalloc``: what Python holds more at the last load than at the first."""
        import tracemalloc

        if self.trace_at is None or len(self.samples) not in self.trace_at:
            return
        if len(self.samples) == self.trace_at[0]:
            self.first_snapshot = tracemalloc.take_snapshot()
            return
        grown = tracemalloc.take_snapshot().compare_to(self.first_snapshot, "traceback")
        loads = self.trace_at[1] - self.trace_at[0]
        print(f"  Python's growth over loads {self.trace_at}: ", file=sys.stderr)
        for stat in grown[:12]:
            frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback[:6])
            print(
                f"    {stat.size_diff / 1024 / loads:8.1f} KiB/load {stat.count_diff:+7} {frames}",
                file=sys.stderr,
            )


def child_generated(child: Child, args: argparse.Namespace, work: Path) -> None:
    """``bench/load_only.py``'s parts: extract, normalize, load, history and views, per part."""
    import dlt
    import load_only

    from feishu_followers.destination import make_destination
    from feishu_followers.options import RunOptions
    from feishu_followers.post_load import after_load

    options = RunOptions.resolve({"duckdb": str(child.db), "memory_budget": args.memory_budget})
    pipeline = dlt.pipeline(
        "load_growth", destination=make_destination(options), dataset_name="d", pipelines_dir=str(work / "p")
    )
    load_only.BATCH_TASKS = 500  # parts of a few thousand rows, not of 2,000 tasks at least
    with child.holding():
        child.samples.append(sample(0, child.db, child.held))
        for part in load_only.parts(args.tasks, args.followers, args.rows_per_load, seed=1):
            pipeline.extract(load_only.resources(part))
            pipeline.normalize()
            pipeline.load()
            after_load(pipeline)
            child.after_load()


def child_run(child: Child, args: argparse.Namespace, work: Path) -> None:
    """``feishu_followers.run.run`` against the simulator at ``args.url``, sampled after each part."""
    from feishu_followers.options import RunOptions
    from feishu_followers.run import Run, run

    load_part: Callable[..., None] = Run.load_part

    def sampled(self: Run, *parts: Any) -> None:
        load_part(self, *parts)
        child.after_load()

    Run.load_part = sampled  # type: ignore[method-assign]
    os.environ |= {
        "SOURCES__FEISHU_TASKS__APP_ID": "cli_demo",
        "SOURCES__FEISHU_TASKS__APP_SECRET": "demo-secret",
        "SOURCES__FEISHU_TASKS__BASE_URL": args.url,
        "RUNTIME__LOG_LEVEL": "CRITICAL",
    }
    flags = {
        "task_ids_file": args.ids,
        "duckdb": str(child.db),
        "pipelines_dir": str(work / "p"),
        "memory_budget": args.memory_budget,
        "rows_per_load": args.rows_per_load,
        "max_rps": 0,
        "max_rpm": 0,
        "quiet": True,
    }
    with child.holding():
        child.samples.append(sample(0, child.db, child.held))
        run(RunOptions.resolve(flags), notify=lambda line: None)


def child_main(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="load-growth-"))
    child = Child(args.child, work / "growth.duckdb")
    child.allocators()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(8)
        child.trace_at = tuple(args.tracemalloc)
    sys.path.insert(0, str(BENCH))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    child.patch_settings()
    started = time.monotonic()
    (child_run if args.url else child_generated)(child, args, work)
    Path(args.out).write_text(json.dumps({"seconds": time.monotonic() - started, "samples": child.samples}))
    return 0


# ------------------------------------------------------------------ the parent: variants side by side
def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x, mean_y = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    across = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / across if across else 0.0


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-load growth (MB/load, after the first quarter of the loads) of each figure, and its ends."""
    loads = [s for s in samples if s["load"] > 0]
    settled = loads[len(loads) // 4 :]
    figures = ("VmRSS", "RssAnon", "heap_mb", "in_use_mb", "free_mb", "mmapped_mb", "arrow_mb", "duckdb_mb")
    figures += ("py_arenas", "py_blocks", "brk_heap", "mmap_anon")
    out: dict[str, Any] = {"loads": len(loads), "threads": loads[-1]["Threads"] if loads else None}
    for name in figures:
        if loads and name in loads[-1]:
            out[name] = {
                "per_load": round(slope([(s["load"], s[name]) for s in settled]), 3),
                "first": loads[0][name],
                "settled": settled[0][name],
                "last": loads[-1][name],
            }
    return out


@contextmanager
def simulator(args: argparse.Namespace, work: Path) -> Iterator[None]:
    """For ``--run``: the tenant's ids and the simulator, in their own processes."""
    if not args.run:
        yield
        return
    import run_bench

    ids, expected = run_bench.task_ids_file(work, args.tasks)
    print(f"tenant: {args.tasks:,} tasks, {expected:,} follows", flush=True)
    with run_bench.simulator(args.tasks) as url:
        args.url, args.ids = url, str(ids)
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", action="append", choices=list(VARIANTS))
    parser.add_argument("--run", action="store_true", help="feishu-followers run against the simulator")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--followers", type=int, default=10, help="followers per task (generated rows)")
    parser.add_argument("--rows-per-load", type=int, default=25_000)
    parser.add_argument("--memory-budget", default="256MB")
    parser.add_argument("--verbose", action="store_true", help="each load's figures as they come")
    parser.add_argument("--tracemalloc", type=int, nargs=2, metavar=("FIRST", "LAST"), help="Python's growth")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    sys.path.insert(0, str(BENCH))
    results: dict[str, Any] = {
        "args": vars(args) | {"variant": args.variant},
        "load_average": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="load-growth-") as tmp, simulator(args, Path(tmp)):
        for variant in args.variant or list(VARIANTS):
            out = Path(tmp) / f"{variant}.json"
            command = [sys.executable, __file__, "--child", variant, "--out", str(out)]
            command += ["--tasks", str(args.tasks), "--followers", str(args.followers)]
            command += ["--rows-per-load", str(args.rows_per_load), "--memory-budget", args.memory_budget]
            command += ["--url", args.url, "--ids", args.ids] if args.run else []
            command += ["--tracemalloc", *map(str, args.tracemalloc)] if args.tracemalloc else []
            print(f"== {variant}: {VARIANTS[variant]}", flush=True)
            env = os.environ | ({"PYTHONMALLOC": "malloc"} if variant == "python-malloc" else {})
            done = subprocess.run(
                command, cwd=REPO, env=env, stderr=None if args.verbose else subprocess.DEVNULL
            )
            if done.returncode:
                results[variant] = {"returncode": done.returncode}
                continue
            child = json.loads(out.read_text())
            results[variant] = {"seconds": round(child["seconds"], 1), **summary(child["samples"])}
            results[variant]["samples"] = child["samples"]
            print(json.dumps({k: v for k, v in results[variant].items() if k != "samples"}), flush=True)
    folder = BENCH / "results"
    folder.mkdir(exist_ok=True)
    path = folder / f"load-growth-{time.strftime('%Y%m%d-%H%M%S')}{'-run' if args.run else ''}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
