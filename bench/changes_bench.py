"""Issue 17's numbers: what ``run --changed`` costs after K changes, and ``follow``'s latency and memory.

The simulator runs in this process (its world is changed from here, as Feishu's users would);
``feishu-followers run``, ``listen`` and ``follow`` run as a user runs them, each its own process.

1. A 100,000-task tenant is loaded once (``run --discover``). ``listen`` records the simulator's
   events. For K = 100 and 1,000: K distinct tasks get a follower, the pushes settle, and
   ``run --changed`` reads them; reported: the simulator's requests by endpoint (follower
   requests against 1.1 x K plus the follower pages of those tasks), the time, and whether
   ``task_followers`` holds the tenant's followers of those tasks.
2. ``follow`` (its default ``--every``, or the one given) on the same pipeline while the
   simulator makes ``--rate`` changes a second (each a new follower of a task not changed
   before) for ``--seconds``. The latency of each change: from its push (the change) to the
   end of the load that brought its row (``_dlt_loads.inserted_at`` of the row's
   ``_dlt_load_id``: the data is queryable from then); p50/p95/max. ``follow``'s RSS is
   sampled every second from /proc: flat or not.

    python bench/changes_bench.py                         # 100,000 tasks, 20 changes/s for 180 s
    python bench/changes_bench.py --tasks 10000 --seconds 60  # quicker
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from feishu_simulator import Faults, Simulator, World

REPO = Path(__file__).resolve().parents[1]
APP_ID, APP_SECRET = "cli_bench", "bench-secret"
TOKEN, KEY = "bench-verification-token", "bench-encrypt-key"
READY = re.compile(r"receiving Feishu events on (http://\S+/feishu/events)")
DATASET = "feishu_tasks"
NO_LIMITS = ["--max-rps", "0", "--max-rpm", "0"]


def env_for(sim: Simulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update(
        RUNTIME__DLTHUB_TELEMETRY="false",
        SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID=APP_ID,
        SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET=APP_SECRET,
        SOURCES__FEISHU_TASKS__CREDENTIALS__VERIFICATION_TOKEN=TOKEN,
        SOURCES__FEISHU_TASKS__CREDENTIALS__ENCRYPT_KEY=KEY,
        SOURCES__FEISHU_TASKS__BASE_URL=sim.base_url,
    )
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "feishu_followers.cli", *args]


class Process:
    """A long-running CLI process (``listen``, ``follow``) with its stderr lines collected."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def url(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if match := READY.search(line):
                    return match.group(1)
            if self.proc.poll() is not None:
                raise SystemExit(f"exited {self.proc.returncode}: {self.lines}")
            time.sleep(0.05)
        raise SystemExit("the receiver did not start")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)


def wait(condition: Any, what: str, timeout: float = 600, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def settled(sim: Simulator) -> bool:
    snap = sim.events.outbox.snapshot()
    return bool(snap["pending"] == 0 and snap["in_flight"] == 0 and snap["queued"] == 0)


def followers_of(duckdb_path: Path, task_ids: list[str]) -> set[tuple[str, str]]:
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        rows = con.execute(
            f"select task_id, follower_id from {DATASET}.task_followers where task_id in (select unnest(?))",
            [task_ids],
        ).fetchall()
    return {(str(t), str(f)) for t, f in rows}


def changed_run_case(
    sim: Simulator, world: World, k: int, tasks: list[str], work: Path, flags: list[str]
) -> dict:
    """K changes pushed and recorded by ``listen``, then one ``run --changed``."""
    for task_id in tasks:
        world.add_follower(task_id)
    wait(lambda: settled(sim), "the pushes")
    sim.reset_stats()
    started = time.monotonic()
    done = subprocess.run(
        cli("run", "--changed", "--quiet", *flags), env=env_for(sim), cwd=work, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    stats = sim.stats.as_dict()["by_endpoint"]
    pages = sum(max(1, math.ceil(len(world.followers(t)) / 50)) for t in tasks)
    truth = {(t, f) for t in tasks for f in world.followers(t)}
    return {
        "K": k,
        "exit": done.returncode,
        "seconds": round(seconds, 1),
        "requests_by_endpoint": stats,
        "follower_requests": stats.get("followers", 0),
        "follower_pages_of_the_K_tasks": pages,
        "bound_1.1K_plus_extra_pages": round(1.1 * k + (pages - k)),
        "exact": followers_of(work / "bench.duckdb", tasks) == truth,
        "outcome": done.stdout.strip()[-300:] or done.stderr.strip()[-300:],
    }


def rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def follow_case(
    sim: Simulator,
    world: World,
    tasks: list[str],
    work: Path,
    flags: list[str],
    rate: float,
    seconds: float,
    every: str | None,
) -> dict:
    cadence = ["--every", every] if every else []
    follow = Process(cli("follow", *flags, "--port", "0", *cadence), env_for(sim), work)
    sim.events.set_request_url(follow.url())
    wait(lambda: any("batch (sweep)" in line for line in follow.lines), "the first batch")
    rss: list[tuple[float, float]] = []
    made: list[tuple[str, str, float]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            if (value := rss_mb(follow.proc.pid)) is not None:
                rss.append((round(time.monotonic() - t0, 1), round(value, 1)))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    interval, pending = 1.0 / rate, iter(tasks)
    next_at = time.monotonic()
    while time.monotonic() - t0 < seconds:
        task_id = next(pending)
        follower = world.add_follower(task_id)
        made.append((task_id, follower, time.time()))
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    wait(lambda: settled(sim), "the pushes")
    want = {(t, f) for t, f, _ in made}

    def all_loaded() -> bool:
        try:
            return want <= followers_of(work / "bench.duckdb", [t for t, _, _ in made])
        except duckdb.Error:  # a batch holds the file
            return False

    wait(all_loaded, "every change to be loaded", 300)
    stop.set()
    sampler.join(5)
    code = follow.stop()
    with duckdb.connect(str(work / "bench.duckdb"), read_only=True) as con:
        rows = con.execute(
            f"""select f.task_id, f.follower_id, l.inserted_at from {DATASET}.task_followers f
                join {DATASET}._dlt_loads l on l.load_id = f._dlt_load_id
                where f.task_id in (select unnest(?))""",
            [[t for t, _, _ in made]],
        ).fetchall()
        unmatched = con.execute(
            f"""select f._dlt_load_id, count(*) from {DATASET}.task_followers f
                where f.task_id in (select unnest(?))
                and f._dlt_load_id not in (select load_id from {DATASET}._dlt_loads) group by 1""",
            [[t for t, _, _ in made]],
        ).fetchall()
    loaded_at = {
        (str(t), str(f)): at.timestamp() if isinstance(at, datetime) else float(at) for t, f, at in rows
    }
    latencies = sorted(loaded_at[(t, f)] - at for t, f, at in made if (t, f) in loaded_at)
    quantiles = statistics.quantiles(latencies, n=100)
    third = max(1, len(rss) // 3)
    return {
        "changes": len(made),
        "changes_without_a_load_row": len(made) - len(latencies),
        "rows_whose_load_id_is_not_in__dlt_loads": unmatched,
        "rate_per_s": rate,
        "seconds": seconds,
        "every": every or "default",
        "latency_p50_s": round(quantiles[49], 2),
        "latency_p95_s": round(quantiles[94], 2),
        "latency_max_s": round(latencies[-1], 2),
        "batches": sum("batch (changes)" in line for line in follow.lines),
        "rss_mb_first_third_median": statistics.median(v for _, v in rss[:third]),
        "rss_mb_last_third_median": statistics.median(v for _, v in rss[-third:]),
        "rss_mb_min_max": [min(v for _, v in rss), max(v for _, v in rss)],
        "rss_every_30s": [v for t, v in rss if int(t) % 30 == 0],
        "last_batch_lines": [line for line in follow.lines if "batch (changes)" in line][-3:],
        "exit_on_sigterm": code,
        "last_line": follow.lines[-1] if follow.lines else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--ks", default="100,1000")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--every", default=None, help="follow's --every (default: follow's own)")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    world = World.generate(tasks=args.tasks, seed=1)
    in_lists = {t for g in world.find_tasklists(app_member=True) for t in world.tasklist_tasks(g)}
    covered = [t for t in world.task_ids() if t in in_lists]
    random.Random(7).shuffle(covered)
    results: dict[str, Any] = {"tasks": args.tasks, "covered_by_the_subscription": len(covered)}
    with (
        tempfile.TemporaryDirectory(prefix="changes-bench-") as folder,
        Simulator(world, faults=Faults(), app_id=APP_ID, app_secret=APP_SECRET) as sim,
    ):
        work = Path(folder)
        journal = work / "journal.sqlite"
        flags = [
            "--duckdb",
            str(work / "bench.duckdb"),
            "--pipelines-dir",
            str(work / "p"),
            "--journal",
            str(journal),
        ]
        started = time.monotonic()
        first = subprocess.run(
            cli("run", "--discover", "--quiet", *NO_LIMITS, *flags),
            env=env_for(sim),
            cwd=work,
            capture_output=True,
            text=True,
        )
        results["first_load"] = {
            "exit": first.returncode,
            "seconds": round(time.monotonic() - started, 1),
            "outcome": first.stdout.strip()[-300:] or first.stderr[-300:],
        }
        print(json.dumps(results, indent=1), flush=True)
        sim.events.settings.update({"verification_token": TOKEN, "encrypt_key": KEY})
        sim.events.coverage.subscribe(None)
        listen = Process(cli("listen", "--port", "0", "--journal", str(journal)), env_for(sim), work)
        sim.events.set_request_url(listen.url())
        used = 0
        results["changed_runs"] = []
        for k in ks:
            results["changed_runs"].append(
                changed_run_case(sim, world, k, covered[used : used + k], work, [*NO_LIMITS, *flags])
            )
            used += k
            print(json.dumps(results["changed_runs"][-1], indent=1), flush=True)
        listen.stop()
        results["follow"] = follow_case(
            sim, world, covered[used:], work, flags, args.rate, args.seconds, args.every
        )
        print(json.dumps(results["follow"], indent=1), flush=True)
    out = REPO / "bench" / "results" / f"changes-{int(time.time())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
