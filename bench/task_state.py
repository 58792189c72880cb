"""Memory of a run's per-task state at N tasks, without HTTP: what the fetch holds per task.

    python bench/task_state.py --tasks 1000000 [--baseline DIR]

Each measurement runs in a fresh process and reports its VmRSS growth: (1) the scheduler taking
N given ids from a file (the dedupe set and the queue), (2) the previous ``last_ok_at`` of N
tasks as the destination hands them over: a dict (what the code of 2026-11 built) against
``ledger.KnownTasks`` (on disk). ``--baseline DIR`` runs (1) with another checkout's code too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import asyncio, random, sys, uuid
from datetime import UTC, datetime, timedelta

def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) // 1024

what, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
from feishu_tasks.client import ClientSettings
from feishu_tasks.control import RunControl
from feishu_tasks.scheduler import FetchPlan, FetchScheduler
from feishu_tasks import ledger  # noqa: F401 (imported before the first reading, when there is one)

def ids():
    with open(path) as lines:
        yield from (line.strip() for line in lines)

def rows():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    yield from ((task_id, start + timedelta(seconds=i)) for i, task_id in enumerate(sorted(ids())))

before = rss()
if what == "given":
    scheduler = FetchScheduler(FetchPlan(ids()), ClientSettings("http://127.0.0.1:9"), RunControl())
    async def take():
        return scheduler._accept_given()
    held = asyncio.run(take())
    print(f"given ids: +{rss() - before} MB ({scheduler.stats.tasks_queued:,} tasks queued)")
elif what == "last_ok_dict":
    held = {str(k): v for k, v in rows()}
    print(f"previous last_ok_at as a dict: +{rss() - before} MB")
else:
    held = ledger.KnownTasks()
    held.add_last_ok(rows())
    print(f"previous last_ok_at in ledger.KnownTasks: +{rss() - before} MB")
"""


def probe(what: str, ids_path: Path, tasks: int, code: Path | None = None) -> str:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(code / part) for part in ("sources", "pipelines", "tools"))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, what, str(ids_path), str(tasks)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    return (done.stdout.strip() or done.stderr.strip().splitlines()[-1]) if done.stdout or done.stderr else ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=Path, metavar="DIR")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ids_path = Path(tmp) / "ids.txt"
        with ids_path.open("w") as out:
            for _ in range(args.tasks):
                out.write(f"{uuid.uuid4()}\n")
        print(f"{args.tasks:,} tasks")
        print("  ours:    ", probe("given", ids_path, args.tasks))
        if args.baseline:
            print("  baseline:", probe("given", ids_path, args.tasks, args.baseline.resolve()))
        print("  ours:    ", probe("last_ok_ledger", ids_path, args.tasks))
        print("  before:  ", probe("last_ok_dict", ids_path, args.tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
