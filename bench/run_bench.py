"""Throughput benchmark: ``feishu-followers run`` against the simulator, and the comparisons.

Every party runs in its own process: the simulator (``python -m feishu_simulator``),
our CLI (``python -m feishu_followers.cli run``) and dlt's ``rest_api`` source (rest_api_baseline.py),
so client and server use different cores and each process's peak RSS is its own.

    python bench/run_bench.py --all            # the four cases of the issue (several minutes)
    python bench/run_bench.py --case 1 --case 2 --quick   # a smaller smoke run

Cases (see BENCHMARKS.md): 1 = 20 ms latency, 5,000 tasks, vs rest_api with 32 workers;
2 = the same without latency; 3 = simulator quota 50/s and 1000/min, 1,500 tasks, default
client limits; 4 = 1M follower rows over 100,000 tasks vs a plain DuckDB insert from Arrow.
Results print as a table and go to ``bench/results/<timestamp>.json`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SEED = 1
APP_ID, APP_SECRET = "cli_demo", "demo-secret"
NO_LIMITS = ["--max-rps", "0", "--max-rpm", "0"]


@dataclass
class Proc:
    """One finished subprocess: wall time, peak RSS (MB) and what it printed."""

    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_process(args: list[str], env: dict[str, str] | None = None) -> Proc:
    """Run ``args``; os.wait4 gives this child's own rusage (peak RSS), not all children's."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    full_env.update({"RUNTIME__DLTHUB_TELEMETRY": "false"}, **(env or {}))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(args, cwd=REPO, env=full_env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    return Proc(seconds, usage.ru_maxrss / 1024, proc.returncode, stdout, stderr)


@contextmanager
def simulator(tasks: int, *extra: str) -> Iterator[str]:
    """The simulator in its own process; yields its base URL."""
    args = [PY, "-m", "feishu_simulator", "--tasks", str(tasks), "--seed", str(SEED), *extra]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        yield first.strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        proc.wait(10)


def sim_get(base_url: str, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"{base_url}{path}", method=method)
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read() or b"null")


def task_ids_file(
    workdir: Path, tasks: int, followers_per_task: int | None = None, users: int | None = None
) -> tuple[Path, int]:
    """The simulated tenant's task ids (the world is deterministic) and its follower total.

    Made in a child process: a world of 100,000 tasks takes ~350 MB, and this process must stay
    small. Python starts our runs with vfork, and a child's ``ru_maxrss`` counts the parent's
    pages until it execs: a big parent would be reported as the child's peak.
    """
    path = workdir / f"ids-{tasks}-{followers_per_task}-{users}.txt"
    script = (
        "import sys; from feishu_simulator import World; "
        f"w = World.generate(tasks={tasks}, seed={SEED}, followers_per_task={followers_per_task}"
        f"{f', users={users}' if users else ''}); ids = w.task_ids(); "
        f"open({str(path)!r}, 'w').write(chr(10).join(ids) + chr(10)); "
        "print(sum(len(w.followers(t)) for t in ids))"
    )
    made = subprocess.run([PY, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    return path, int(made.stdout.strip().splitlines()[-1])


def run_ours(
    base_url: str,
    ids: Path,
    workdir: Path,
    *flags: str,
    run_dir: Path | None = None,
    config: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``feishu-followers run`` as a user runs it; then the rows and dlt's step times.

    Pass the ``run_dir`` of an earlier run to run again into the same pipeline and file;
    ``config`` adds ``sources.feishu_tasks`` settings (as env vars, e.g. rows_per_load).
    """
    import duckdb

    run_dir = run_dir or Path(tempfile.mkdtemp(dir=workdir, prefix="ours-"))
    db = run_dir / "followers.duckdb"
    args = [PY, "-m", "feishu_followers.cli", "run", "--base-url", base_url, "--task-ids-file", str(ids)]
    args += ["--duckdb", str(db), "--pipelines-dir", str(run_dir / "pipelines"), *flags]
    env = {"SOURCES__FEISHU_TASKS__APP_ID": APP_ID, "SOURCES__FEISHU_TASKS__APP_SECRET": APP_SECRET}
    env.update({f"SOURCES__FEISHU_TASKS__{key.upper()}": value for key, value in (config or {}).items()})
    proc = run_process(args, env)
    if proc.returncode:
        raise RuntimeError(f"our run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select count(*) from feishu_tasks.task_followers").fetchone()[0]
        id_list = con.execute("select count(*) from feishu_tasks.task_followers__id_list").fetchone()[0]
    return {
        "seconds": proc.seconds,
        "max_rss_mb": proc.max_rss_mb,
        "rows": rows,
        "id_list_rows": id_list,
        "steps": dlt_steps(proc.stdout),
        "duckdb": str(db),
        "run_dir": run_dir,
    }


def dlt_steps(summary: str) -> dict[str, float]:
    """Seconds per dlt step, summed over the run's loads, from our summary's "dlt steps:" line."""
    line = next((ln for ln in summary.splitlines() if ln.strip().startswith("dlt steps:")), "")
    steps: dict[str, float] = {}
    for part in line.split(":", 1)[-1].split(","):
        name, _, rest = part.strip().partition(" ")
        if name:
            steps[name] = float(rest.split()[0])
    return steps


def run_rest_api(base_url: str, ids: Path, workdir: Path) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="rest-"))
    script = str(REPO / "bench" / "rest_api_baseline.py")
    proc = run_process([PY, script, base_url, str(ids), str(run_dir / "r.duckdb"), str(run_dir / "p")])
    if proc.returncode:
        raise RuntimeError(f"rest_api run failed: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": proc.seconds, "max_rss_mb": proc.max_rss_mb, "rows": result["rows"]}


@dataclass
class Case:
    number: int
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    goals: list[str] = field(default_factory=list)


def compare_case(number: int, tasks: int, latency_ms: float, goal: float, workdir: Path) -> Case:
    """Cases 1 and 2: our CLI vs rest_api (32 workers), same simulator, same rows."""
    case = Case(number, f"{tasks:,} tasks, {latency_ms:g} ms latency: ours vs rest_api (32 workers)")
    ids, expected = task_ids_file(workdir, tasks)
    with simulator(tasks, "--latency-ms", str(latency_ms)) as url:
        ours = run_ours(url, ids, workdir, *NO_LIMITS, "--concurrency", "64")
        ours_default = run_ours(url, ids, workdir, *NO_LIMITS)
        rest = run_rest_api(url, ids, workdir)
    assert ours["rows"] == rest["rows"] == expected, (ours["rows"], rest["rows"], expected)
    speedup = rest["seconds"] / ours["seconds"]
    case.figures = {
        "follower_rows": expected,
        "ours_seconds": ours["seconds"],
        "ours_steps": ours["steps"],
        "ours_max_rss_mb": ours["max_rss_mb"],
        "ours_default_concurrency_seconds": ours_default["seconds"],
        "rest_api_seconds": rest["seconds"],
        "rest_api_max_rss_mb": rest["max_rss_mb"],
        "speedup": speedup,
        "speedup_default_concurrency": rest["seconds"] / ours_default["seconds"],
    }
    case.goals.append(f"speedup {speedup:.1f}x (goal >= {goal:g}x): {'met' if speedup >= goal else 'MISSED'}")
    return case


def quota_case(tasks: int, workdir: Path) -> Case:
    """Case 3: simulator quota 50/s and 1000/min, our default limits; rate and 429 share."""
    case = Case(3, f"{tasks:,} tasks, simulator quota 50/s + 1000/min, default client limits")
    ids, expected = task_ids_file(workdir, tasks)
    with simulator(tasks, "--quota-per-second", "50", "--quota-per-minute", "1000") as url:
        ours = run_ours(url, ids, workdir)
        stats = sim_get(url, "/_sim/stats")
    assert ours["rows"] == expected, (ours["rows"], expected)
    per_second = {int(k): v for k, v in stats["per_second"].items()}
    first, last = min(per_second), max(per_second)
    counts = [per_second.get(s, 0) for s in range(first, last + 1)]
    windows = [sum(counts[i : i + 60]) for i in range(max(1, len(counts) - 59))]
    requests, limited = stats["business_requests"], stats["rate_limited"]
    span = stats["last_request_at"] - stats["first_request_at"]
    quota = 1000 / 60
    best_minute = max(windows) / 60
    share_429 = limited / requests if requests else 0.0
    case.figures = {
        "business_requests": requests,
        "rate_limited_429": limited,
        "share_429": share_429,
        "rate_first_to_last_arrival": requests / span,
        "rate_over_wall_time": requests / ours["seconds"],
        "rate_best_60s_window": best_minute,
        "best_60s_window_share_of_quota": best_minute / quota,
        "max_in_any_1s": max(counts),
        "wall_seconds": ours["seconds"],
    }
    met_rate = best_minute >= 0.95 * quota
    case.goals.append(
        f"best 60 s window {best_minute:.2f}/s = {best_minute / quota:.1%} of 16.7/s (goal >= 95%): "
        f"{'met' if met_rate else 'MISSED'}"
    )
    case.goals.append(f"429 share {share_429:.2%} (goal < 1%): {'met' if share_429 < 0.01 else 'MISSED'}")
    return case


def million_case(tasks: int, workdir: Path) -> Case:
    """Case 4: ~10 followers per task into DuckDB; vs CREATE TABLE AS from an Arrow table."""
    import duckdb

    case = Case(4, f"{tasks * 10:,} follower rows over {tasks:,} tasks into DuckDB")
    ids, expected = task_ids_file(workdir, tasks, followers_per_task=10)
    flags = (*NO_LIMITS, "--concurrency", "64")
    with simulator(tasks, "--followers-per-task", "10") as url:
        # one dlt load for the whole run, the shape a plain insert compares with
        ours = run_ours(url, ids, workdir, *flags, config={"rows_per_load": "0"})
        # the scheduled case: the same tasks again, merged into tables that already hold them
        again = run_ours(url, ids, workdir, *flags, run_dir=ours["run_dir"], config={"rows_per_load": "0"})
        # the default: the run is loaded in parts of 500,000 rows (progress kept if killed)
        parts = run_ours(url, ids, workdir, *flags)
    assert ours["rows"] == expected == again["rows"] == parts["rows"], (ours["rows"], again["rows"])
    with duckdb.connect(ours["duckdb"], read_only=True) as con:
        arrow_rows = con.sql(
            "select task_id, follower_id, user_id_type, _dlt_id, _dlt_load_id "
            "from feishu_tasks.task_followers"
        ).to_arrow_table()
    plain_db = workdir / "plain.duckdb"
    started = time.monotonic()
    with duckdb.connect(str(plain_db)) as con:
        con.register("arrow_rows", arrow_rows)
        con.execute("create table task_followers as select * from arrow_rows")
    plain = time.monotonic() - started
    steps = ours["steps"]
    normalize_load = steps.get("normalize", 0.0) + steps.get("load", 0.0)
    case.figures = {
        "follower_rows": ours["rows"],
        "id_list_rows": ours["id_list_rows"],
        "ours_wall_seconds": ours["seconds"],
        "ours_steps": steps,
        "ours_normalize_plus_load_seconds": normalize_load,
        "plain_duckdb_insert_seconds": plain,
        "normalize_load_vs_plain": normalize_load / plain,
        "ours_max_rss_mb": ours["max_rss_mb"],
        "rerun_steps": again["steps"],
        "rerun_normalize_plus_load_seconds": again["steps"].get("normalize", 0.0)
        + again["steps"].get("load", 0.0),
        "rerun_max_rss_mb": again["max_rss_mb"],
        "default_in_parts_steps": parts["steps"],
        "default_in_parts_wall_seconds": parts["seconds"],
        "default_in_parts_max_rss_mb": parts["max_rss_mb"],
    }
    ratio = normalize_load / plain
    case.goals.append(
        f"normalize+load {normalize_load:.2f} s = {ratio:.1f}x the plain insert {plain:.2f} s "
        f"(goal <= 2x): {'met' if ratio <= 2 else 'MISSED'}"
    )
    peaks = (("peak RSS", ours), ("peak RSS of the re-run", again), ("peak RSS loaded in parts", parts))
    for label, rss in ((label, run["max_rss_mb"]) for label, run in peaks):
        case.goals.append(f"{label} {rss:.0f} MB (goal < 300 MB): {'met' if rss < 300 else 'MISSED'}")
    return case


def run_case(number: int, quick: bool, workdir: Path) -> Case:
    if number == 1:
        return compare_case(1, 1_000 if quick else 5_000, 20, 3, workdir)
    if number == 2:
        return compare_case(2, 1_000 if quick else 5_000, 0, 5, workdir)
    if number == 3:
        return quota_case(300 if quick else 1_500, workdir)
    if number == 4:
        return million_case(10_000 if quick else 100_000, workdir)
    raise ValueError(f"no case {number}")


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(
        next(x.split()[1] for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
    )
    packages = {
        name: md.version(name) for name in ("dlt", "duckdb", "httpx", "httpcore", "pyarrow", "aiohttp")
    }
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        **packages,
    }


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", type=int, action="append", choices=[1, 2, 3, 4])
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = parser.parse_args(argv)
    numbers = [1, 2, 3, 4] if args.all else sorted(set(args.case or []))
    if not numbers:
        parser.error("give --case N (repeatable) or --all")
    info = machine()
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="feishu-bench-") as tmp:
        for number in numbers:
            case = run_case(number, args.quick, Path(tmp))
            results.append(case)
            print(f"\n== case {case.number}: {case.title}")
            for key, value in case.figures.items():
                print(f"  {key:38} {fmt(value)}")
            for goal in case.goals:
                print(f"  -> {goal}")
            sys.stdout.flush()
    if not args.no_json:
        out = REPO / "bench" / "results"
        out.mkdir(exist_ok=True)
        path = out / f"{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
        path.write_text(
            json.dumps(
                {"machine": info, "quick": args.quick, "cases": [asdict(c) for c in results]}, indent=2
            )
        )
        print(f"\nwrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
