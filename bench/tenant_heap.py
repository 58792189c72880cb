"""What each further fetching tenant holds: tracemalloc mid-fetch, grouped by who allocated it.

The store simulator runs in a child process (as in ``tenants_bench.py``); the CLI's
``run --discover --tenant …`` runs in this one, under tracemalloc (25 frames). One snapshot is
taken mid-fetch, when every tenant's followers endpoint has answered ``--at`` requests (a
condition read from the simulator, not a clock), before any tenant loads. Each allocation is
grouped by the first frame in our code or in dlt (else its first frame), so that the holders
can be compared between 1 and N tenants:

    python bench/tenant_heap.py --tenants 1  > /tmp/heap1.json
    python bench/tenant_heap.py --tenants 10 > /tmp/heap10.json
    python bench/tenant_heap.py --compare /tmp/heap1.json /tmp/heap10.json

tracemalloc sees Python's allocations only (and those of C code through Python's allocator):
not DuckDB's, Arrow's or SQLite's own heaps; ``/proc`` RSS at the snapshot is printed beside.
Under tracemalloc the run is several times slower (10 tenants: ~5 minutes to the snapshot), so
dlt's side lags the fetch and the rows waiting between them (``bridge``, ``Batcher``) weigh more
than in a normal run; tracemalloc stops after the snapshot, so the loads run at full speed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tenants_bench import APP_ID, APP_SECRET, record_ticket, serve, tenant_stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OURS = (f"{os.sep}sources{os.sep}feishu_tasks{os.sep}", f"{os.sep}feishu_followers{os.sep}")
DLT = f"{os.sep}dlt{os.sep}"
FRAMES = 25


def holder(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame in our code or dlt's (``file:line``), else the innermost frame."""
    frames = list(reversed(traceback))  # innermost (the allocating) frame first
    for frame in frames:
        name = frame.filename
        if any(part in name for part in OURS) or DLT in name:
            return f"{_short(name)}:{frame.lineno}"
    return f"{_short(frames[0].filename)}:{frames[0].lineno}" if frames else "?"


def _short(path: str) -> str:
    for marker in ("site-packages" + os.sep, str(REPO) + os.sep, "lib" + os.sep + "python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def rss_parts() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            values[name] = int(rest.split()[0]) // 1024
    return values


class MidFetch(threading.Thread):
    """Takes the snapshot once every tenant has had ``at`` follower requests answered."""

    def __init__(self, base_url: str, keys: list[str], at: int) -> None:
        super().__init__(daemon=True)
        self.base_url, self.keys, self.at = base_url, keys, at
        self.snapshot: tracemalloc.Snapshot | None = None
        self.rss: dict[str, int] = {}
        self.traced_mb = 0.0
        self.at_s = 0.0

    def run(self) -> None:
        started = time.monotonic()
        while True:
            served = tenant_stats(self.base_url)
            if all(served[k]["by_endpoint"].get("followers", 0) >= self.at for k in self.keys):
                break
            time.sleep(0.5)  # polling a condition, not waiting for one to happen by a time
        self.rss = rss_parts()
        self.traced_mb = tracemalloc.get_traced_memory()[0] / 2**20
        self.snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()  # the rest of the run (the loads) at full speed: only the snapshot counts
        self.at_s = time.monotonic() - started


def measure(tenants: int, tasks: int, at: int) -> dict[str, Any]:
    parent, child = multiprocessing.Pipe()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(tenants, tasks, child, stop), daemon=True)
    server.start()
    keys = [f"tenant_{i:02d}" for i in range(tenants)]
    try:
        base_url, ticket = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            journal = folder / "journal.sqlite"
            record_ticket(journal, ticket)
            os.environ.update(
                {
                    "RUNTIME__DLTHUB_TELEMETRY": "false",
                    "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
                    "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
                    "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE": "store",
                    "SOURCES__FEISHU_TASKS__BASE_URL": base_url,
                }
            )
            os.chdir(folder)
            from feishu_followers.cli import main as cli

            argv = ["run", "--discover", "--json", "--journal", str(journal)]
            argv += ["--duckdb", str(folder / "bench.duckdb"), "--pipelines-dir", str(folder / "pipelines")]
            argv += [arg for key in keys for arg in ("--tenant", key)]
            tracemalloc.start(FRAMES)
            watcher = MidFetch(base_url, keys, at)
            watcher.start()
            code = cli(argv)
            watcher.join(5)
            os.chdir(REPO)
    finally:
        stop.set()
        server.join(30)
    if code != 0 or watcher.snapshot is None:
        raise SystemExit(f"run ended {code}; snapshot taken: {watcher.snapshot is not None}")
    groups: dict[str, list[int]] = {}
    for stat in watcher.snapshot.statistics("traceback"):
        entry = groups.setdefault(holder(stat.traceback), [0, 0])
        entry[0] += stat.size
        entry[1] += stat.count
    return {
        "tenants": tenants,
        "snapshot_at_s": round(watcher.at_s, 1),
        "rss_mb": watcher.rss,
        "traced_mb": round(watcher.traced_mb, 1),
        "by_holder": {k: v for k, v in sorted(groups.items(), key=lambda kv: -kv[1][0]) if v[0] > 20_000},
    }


def compare(one_path: str, many_path: str, top: int) -> None:
    one, many = json.loads(Path(one_path).read_text()), json.loads(Path(many_path).read_text())
    extra = many["tenants"] - one["tenants"]
    print(
        f"traced: {one['traced_mb']} MB ({one['tenants']} tenant) vs {many['traced_mb']} MB "
        f"({many['tenants']}); RSS {one['rss_mb']} vs {many['rss_mb']}"
    )
    names = set(one["by_holder"]) | set(many["by_holder"])
    rows = []
    for name in names:
        a = one["by_holder"].get(name, [0, 0])[0]
        b = many["by_holder"].get(name, [0, 0])[0]
        rows.append((b - a, name, a, b))
    rows.sort(reverse=True)
    print(f"{'per extra tenant MB':>20} {'1: MB':>8} {'N: MB':>8}  holder")
    for delta, name, a, b in rows[:top]:
        print(f"{delta / extra / 2**20:>20.3f} {a / 2**20:>8.2f} {b / 2**20:>8.2f}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--at", type=int, default=900, help="follower requests answered per tenant")
    parser.add_argument("--compare", nargs=2, metavar=("ONE", "MANY"))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", help="write the JSON here (the CLI prints its own summary on stdout)")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare, args.top)
        return 0
    result = json.dumps(measure(args.tenants, args.tasks, args.at))
    if args.out:
        Path(args.out).write_text(result)
    else:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
