"""Where a run's memory goes: one ``feishu-followers run`` in this process, sampled by step.

Peak RSS of the whole CLI process is what ``bench/scale.py`` reports (``os.wait4`` of a child);
this script attributes it. The CLI runs in-process (``feishu_followers.cli.main``) while a thread
samples, every 0.1 s: VmRSS (``/proc/self/status``), DuckDB's own memory (``duckdb_memory()`` on
a cursor of the connection dlt holds: its buffer pool, and what it spilled to disk), and Arrow's
allocations (``pyarrow.total_allocated_bytes()``). Each sample is tagged with the step under way
(``fetch`` until dlt normalizes, then ``normalize``, ``load``, ``history and views``, as the
progress display hears of them). The simulator is its own process, as in ``run_bench.py``.

    python bench/memory_profile.py --tasks 100000                     # the realistic tenant
    python bench/memory_profile.py --tasks 800 --followers-per-task 50 -- --memory-budget 256MB
    python bench/memory_profile.py --tasks 100000 --timeline          # every second, not only peaks

Arguments after ``--`` go to ``feishu-followers run``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import run_bench  # noqa: E402  (the simulator and the tenant's ids)

MB = 2**20


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Sample:
    seconds: float
    step: str
    rss_mb: float
    duckdb_mb: float | None
    duckdb_spilled_mb: float | None
    arrow_mb: float


@dataclass
class Sampler:
    """Samples memory in a thread while the run goes on; the run tells it the step."""

    interval: float = 0.1
    step: str = "start"
    samples: list[Sample] = field(default_factory=list)
    pools: list[Any] = field(default_factory=list)  # dlt's DuckDB connection pools, as they appear

    def on_step(self, name: str, started: bool) -> None:
        self.step = name if started else "fetch"

    def duckdb_memory(self) -> tuple[float | None, float | None]:
        """DuckDB's buffer pool and spilled bytes, read on a cursor of dlt's own connection."""
        for pool in reversed(self.pools):
            with pool._conn_lock:  # dlt closes the connection under this lock: never mid-query
                if pool._conn is None:
                    continue
                cursor = pool._conn.cursor()
                try:
                    used, spilled = cursor.execute(
                        "select sum(memory_usage_bytes), sum(temporary_storage_bytes) from duckdb_memory()"
                    ).fetchone()
                finally:
                    cursor.close()
                return used / MB, spilled / MB
        return None, None

    def take(self, started: float) -> None:
        import pyarrow as pa

        try:
            used, spilled = self.duckdb_memory()
        except Exception:  # the database is being closed or opened: no figure this time
            used, spilled = None, None
        self.samples.append(
            Sample(
                round(time.monotonic() - started, 2),
                self.step,
                vm_rss_mb(),
                used,
                spilled,
                pa.total_allocated_bytes() / MB,
            )
        )

    @contextmanager
    def running(self) -> Iterator[None]:
        started, done = time.monotonic(), threading.Event()

        def loop() -> None:
            while not done.wait(self.interval):
                self.take(started)

        thread = threading.Thread(target=loop, name="memory-sampler", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.take(started)


def instrument_pools(sampler: Sampler) -> None:
    """Hear of every DuckDB connection pool dlt makes, to read DuckDB's memory through it."""
    from dlt.destinations.impl.duckdb.configuration import DuckDbConnectionPool

    original_borrow = DuckDbConnectionPool.borrow_conn

    def borrow_conn(pool: Any, *args: Any, **kwargs: Any) -> Any:
        if pool not in sampler.pools:
            sampler.pools.append(pool)
        return original_borrow(pool, *args, **kwargs)

    DuckDbConnectionPool.borrow_conn = borrow_conn  # type: ignore[method-assign]


def instrument(sampler: Sampler) -> None:
    """Hear of the run's steps, and of every DuckDB connection pool dlt makes."""
    from feishu_followers import run as run_module

    instrument_pools(sampler)
    original_init = run_module.Run.__init__

    def init(self: Any, options: Any, control: Any, notify: Any, on_step: Callable[..., None] | None = None):
        def both(name: str, started: bool) -> None:
            sampler.on_step(name, started)
            if on_step:
                on_step(name, started)

        original_init(self, options, control, notify, both)
        if sampler.step == "start":
            sampler.step = "fetch"

    run_module.Run.__init__ = init  # type: ignore[method-assign]


def peaks(samples: list[Sample]) -> dict[str, dict[str, float]]:
    """Per step: the highest RSS, DuckDB memory, DuckDB spill and Arrow allocation seen."""
    out: dict[str, dict[str, float]] = {}
    for sample in samples:
        step = out.setdefault(
            sample.step, {"rss_mb": 0.0, "duckdb_mb": 0.0, "spilled_mb": 0.0, "arrow_mb": 0.0}
        )
        step["rss_mb"] = max(step["rss_mb"], sample.rss_mb)
        step["duckdb_mb"] = max(step["duckdb_mb"], sample.duckdb_mb or 0.0)
        step["spilled_mb"] = max(step["spilled_mb"], sample.duckdb_spilled_mb or 0.0)
        step["arrow_mb"] = max(step["arrow_mb"], sample.arrow_mb)
    return out


def tenant_ids(work: Path, tasks: int, followers_per_task: int | None) -> tuple[Path, int]:
    """The tenant's ids file (made in a child process: the world must not sit in this one)."""
    return run_bench.task_ids_file(work, tasks, followers_per_task)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument(
        "--followers-per-task", type=int, help="every task exactly this many (default: the mix)"
    )
    parser.add_argument("--timeline", action="store_true", help="print one sample per second")
    parser.add_argument("--json", metavar="PATH", help="write the samples and peaks here")
    args = parser.parse_args(ours)

    from feishu_followers.cli import main as cli_main

    sampler = Sampler()
    instrument(sampler)
    with tempfile.TemporaryDirectory(prefix="feishu-memory-") as tmp:
        work = Path(tmp)
        ids, expected = tenant_ids(work, args.tasks, args.followers_per_task)
        sim_flags = ["--followers-per-task", str(args.followers_per_task)] if args.followers_per_task else []
        with run_bench.simulator(args.tasks, *sim_flags) as url:
            os.environ.update(
                SOURCES__FEISHU_TASKS__APP_ID=run_bench.APP_ID,
                SOURCES__FEISHU_TASKS__APP_SECRET=run_bench.APP_SECRET,
            )
            cli = ["run", "--base-url", url, "--task-ids-file", str(ids), "--quiet", *run_bench.NO_LIMITS]
            if "--destination" not in extra:
                cli += ["--duckdb", str(work / "followers.duckdb")]
            cli += ["--pipelines-dir", str(work / "pipelines"), *extra]
            with sampler.running():
                code = cli_main(cli)
    print(
        f"exit {code}; {args.tasks:,} tasks, {expected:,} followers; "
        f"peak RSS {max(s.rss_mb for s in sampler.samples):.0f} MB"
    )
    print(f"{'step':18} {'RSS MB':>8} {'DuckDB MB':>10} {'spilled MB':>11} {'Arrow MB':>9}")
    for step, figures in peaks(sampler.samples).items():
        print(
            f"{step:18} {figures['rss_mb']:8.0f} {figures['duckdb_mb']:10.0f} "
            f"{figures['spilled_mb']:11.0f} {figures['arrow_mb']:9.0f}"
        )
    if args.timeline:
        last = -1.0
        for sample in sampler.samples:
            if sample.seconds - last >= 1.0:
                last = sample.seconds
                duck = f"{sample.duckdb_mb:.0f}" if sample.duckdb_mb is not None else "-"
                print(
                    f"  {sample.seconds:7.1f}s {sample.step:18} rss {sample.rss_mb:4.0f} "
                    f"duckdb {duck:>4} arrow {sample.arrow_mb:4.0f}"
                )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"peaks": peaks(sampler.samples), "samples": [s.__dict__ for s in sampler.samples]})
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
