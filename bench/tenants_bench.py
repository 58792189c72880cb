"""Store app benchmark (issue 18): many tenants side by side in one process, each at its own quota.

The store simulator runs in a child process (every tenant its own world and its own quota, at
Feishu's documented per-endpoint limits: 50/s and 1,000/min per app and tenant), and our CLI in
another (``feishu-followers run --tenant …``), so client and server use different cores and the
run's peak RSS is its own. Two runs against fresh simulators and fresh DuckDB files:

1. one tenant alone (``--tenant tenant_00``);
2. every tenant at once (``--tenant`` × N).

Reported: wall time of each (target: all ≤ 1.3 × alone), each tenant's follower requests per
minute during its fetch against its quota (target ≥ 95 %), 429s per tenant (target 0), the
run's peak RSS (target < 300 MB).

    python bench/tenants_bench.py                      # 20 tenants × 1,000 tasks (~3 minutes)
    python bench/tenants_bench.py --tenants 3 --tasks 200   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from worker_cgroup import Worker  # noqa: E402  (--worker-mb)

REPO = Path(__file__).resolve().parents[1]
APP_ID, APP_SECRET = "cli_store_bench", "store-bench-secret"
QUOTA_PER_MINUTE = 1000  # Feishu's task quota per app and tenant (the followers endpoint)


def serve(tenants: int, tasks: int, ready: Any, stop: Any) -> None:
    """The child process: the store simulator, its base URL and the ticket sent back once up."""
    sys.path.insert(0, str(REPO / "tools"))
    from feishu_simulator import World
    from feishu_simulator.quota import DOCUMENTED_LIMITS
    from feishu_simulator.store import StoreSimulator

    worlds = {f"tenant_{i:02d}": World.generate(tasks=tasks, seed=100 + i) for i in range(tenants)}
    sim = StoreSimulator(worlds, app_id=APP_ID, app_secret=APP_SECRET)
    for key in worlds:  # the documented quotas, per tenant (each tenant's gateway counts its own)
        faults = sim.tenant(key).faults
        faults.quota_per_endpoint = {name: limits for name, limits in DOCUMENTED_LIMITS.items()}
    with sim:
        ticket = sim.push_ticket()
        ready.send((sim.base_url, ticket))
        stop.wait()


def tenant_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url + "/_sim/store/stats", timeout=30) as answer:
        return dict(json.loads(answer.read()))


def record_ticket(journal: Path, ticket: str) -> None:
    """What ``listen`` does when the ticket event arrives (the bench runs no receiver)."""
    from feishu_tasks.journal import AppTicket, Journal, RecordedEvent

    with Journal(journal) as opened:
        opened.record([RecordedEvent("bench-ticket", (AppTicket(APP_ID, ticket),), "app_ticket")])


def run_case(keys: list[str], tenants: int, tasks: int, folder: Path) -> dict[str, Any]:
    """One run of the CLI against a fresh simulator: wall, peak RSS, per-tenant figures."""
    parent, child = multiprocessing.Pipe()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(tenants, tasks, child, stop), daemon=True)
    server.start()
    try:
        base_url, ticket = parent.recv()
        journal = folder / "journal.sqlite"
        record_ticket(journal, ticket)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
        env |= {
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE": "store",
            "SOURCES__FEISHU_TASKS__BASE_URL": base_url,
        }
        command = [sys.executable, "-m", "feishu_followers.cli", "run", "--discover", "--json"]
        command += [arg for key in keys for arg in ("--tenant", key)]
        command += ["--journal", str(journal), "--duckdb", str(folder / "bench.duckdb")]
        command += ["--pipelines-dir", str(folder / "pipelines")]
        worker = Worker() if Worker.limit_mb else None
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=worker.enter if worker else None,
        )
        sampler = RssSampler(process.pid)
        sampler.start()
        out, err = process.communicate()
        wall = time.monotonic() - started
        sampler.join()
        # the child's own peak RSS: wait4 would race communicate(), so read it from the resource
        # usage of waited-for children, the only one being this run (the server is not waited yet)
        import resource

        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        worker_figures = worker.figures() if worker else {}
        if worker:
            worker.remove()
        if process.returncode != 0:
            raise SystemExit(f"run failed ({process.returncode}): {err.decode()[-2000:]}")
        summary = json.loads(out)
        served = tenant_stats(base_url)
    finally:
        stop.set()
        server.join(30)
    per_tenant = {}
    for key in keys:
        figures = summary["tenants"][key]
        fetch = figures["fetch_seconds"] or 0.0
        followers_requests = served[key]["by_endpoint"].get("followers", 0)
        per_minute = followers_requests / fetch * 60 if fetch else 0.0
        per_tenant[key] = {
            "tasks_ok": figures["tasks"]["ok"],
            "fetch_seconds": round(fetch, 1),
            "followers_requests": followers_requests,
            "followers_per_minute": round(per_minute),
            "quota_share": round(per_minute / QUOTA_PER_MINUTE, 3),
            "rate_limited_429": served[key]["rate_limited"],
        }
    return {
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(rss_mb),
        "peak_rss_parts_mb": sampler.peaks(),
        "rss_at_mb": sampler.profile(),
        "worker": worker_figures,
        "tenants": per_tenant,
    }


class RssSampler(threading.Thread):
    """The run's ``/proc/<pid>/status`` every 0.2 s: peak RSS in parts (anonymous: the heaps;
    file: the libraries' pages) and when it peaked, to see where a tenant's memory goes."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.path = Path(f"/proc/{pid}/status")
        self.samples: list[tuple[float, dict[str, int]]] = []

    def run(self) -> None:
        started = time.monotonic()
        while True:
            try:
                text = self.path.read_text()
            except OSError:
                return
            values = {}
            for line in text.splitlines():
                name, _, rest = line.partition(":")
                if name in self.FIELDS:
                    values[name] = int(rest.split()[0]) // 1024
            if not values or "zombie" in text.split("State:")[1].splitlines()[0]:
                return
            self.samples.append((time.monotonic() - started, values))
            time.sleep(0.2)

    def peaks(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        peak = {name: max(v.get(name, 0) for _, v in self.samples) for name in self.FIELDS}
        at = max(self.samples, key=lambda s: s[1].get("VmRSS", 0))[0]
        return peak | {"peak_at_s": round(at, 1)}

    def profile(self, points: int = 12) -> list[tuple[float, int]]:
        """VmRSS at a few evenly spread moments of the run."""
        if not self.samples:
            return []
        step = max(1, len(self.samples) // points)
        return [(round(t, 1), v.get("VmRSS", 0)) for t, v in self.samples[::step]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per tenant")
    parser.add_argument(
        "--scale",
        help="memory per tenant instead: run 'all at once' for each of these tenant counts (e.g. 1,5,10,20)",
    )
    parser.add_argument("--worker-mb", type=int, help="run the CLI in a memory cgroup of this many MB")
    args = parser.parse_args(argv)
    Worker.limit_mb = args.worker_mb
    keys = [f"tenant_{i:02d}" for i in range(args.tenants)]
    if args.scale:
        return scale(keys, [int(n) for n in args.scale.split(",")], args.tasks)
    with tempfile.TemporaryDirectory() as alone_dir:
        alone = run_case(keys[:1], args.tenants, args.tasks, Path(alone_dir))
    # RUSAGE_CHILDREN is a maximum over every child so far: measure "all" in a fresh interpreter
    if "--all-only" not in sys.argv:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--tenants",
                str(args.tenants),
                "--tasks",
                str(args.tasks),
                "--all-only",
                *(["--worker-mb", str(args.worker_mb)] if args.worker_mb else []),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        together = json.loads(done.stdout)
    report = {"tenants": args.tenants, "tasks_per_tenant": args.tasks, "alone": alone, "all": together}
    print_report(report)
    return 0


def scale(keys: list[str], counts: list[int], tasks: int) -> int:
    """Peak RSS (and its parts) for 1, 5, … tenants at once: what each further tenant costs."""
    rows = []
    for count in counts:
        with tempfile.TemporaryDirectory() as folder:
            case = run_case(keys[:count], len(keys), tasks, Path(folder))
        parts = case["peak_rss_parts_mb"]
        rows.append({"tenants": count, "wall_seconds": case["wall_seconds"], **parts})
        print(
            f"  {count:>3} tenants: wall {case['wall_seconds']} s, peak VmRSS {parts.get('VmRSS')} MB "
            f"(anon {parts.get('RssAnon')}, file {parts.get('RssFile')}) at {parts.get('peak_at_s')} s; "
            f"RSS over time {case['rss_at_mb']}",
            flush=True,
        )
    first, last = rows[0], rows[-1]
    if last["tenants"] > first["tenants"]:
        per = (last["VmRSS"] - first["VmRSS"]) / (last["tenants"] - first["tenants"])
        print(f"  each further tenant: {per:.1f} MB")
    print(json.dumps(rows))
    return 0


def all_only(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int)
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--all-only", action="store_true")
    parser.add_argument("--worker-mb", type=int)
    args = parser.parse_args(argv)
    Worker.limit_mb = args.worker_mb
    keys = [f"tenant_{i:02d}" for i in range(args.tenants)]
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(run_case(keys, args.tenants, args.tasks, Path(folder))))
    return 0


def print_report(report: dict[str, Any]) -> None:
    alone, together = report["alone"], report["all"]
    shares = [t["quota_share"] for t in together["tenants"].values()]
    limited = sum(t["rate_limited_429"] for t in together["tenants"].values())
    print(f"{report['tenants']} tenants x {report['tasks_per_tenant']} tasks, at {QUOTA_PER_MINUTE}/min each")
    first = alone["tenants"]["tenant_00"]
    print(
        f"  one tenant alone: {alone['wall_seconds']} s wall, fetch {first['fetch_seconds']} s, "
        f"{first['followers_per_minute']}/min, peak RSS {alone['peak_rss_mb']} MB"
    )
    ratio = together["wall_seconds"] / alone["wall_seconds"]
    print(
        f"  all at once: {together['wall_seconds']} s wall ({ratio:.2f} x alone), "
        f"peak RSS {together['peak_rss_mb']} MB"
    )
    if together.get("worker"):
        print(f"  in a memory cgroup: {together['worker']} (alone: {alone.get('worker')})")
    print(f"  quota share per tenant: min {min(shares):.1%}, max {max(shares):.1%}; 429s: {limited}")
    print(json.dumps(report))


if __name__ == "__main__":
    if "--all-only" in sys.argv:
        sys.exit(all_only(sys.argv[1:]))
    sys.exit(main())
