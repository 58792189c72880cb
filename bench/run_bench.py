"""Throughput benchmark: ``feishu-followers run`` against the simulator, and the comparisons.

Every party runs in its own process: the simulator (``python -m feishu_simulator``),
our CLI (``python -m feishu_followers.cli run``) and dlt's ``rest_api`` source (rest_api_baseline.py),
so client and server use different cores and each process's peak RSS is its own.

    python bench/run_bench.py --all            # the four cases of the issue (several minutes)
    python bench/run_bench.py --case 1 --case 2 --quick   # a smaller smoke run

Cases (see BENCHMARKS.md): 1 = 20 ms latency, 5,000 tasks, vs rest_api with 32 workers;
2 = the same without latency; 3 = simulator quota 50/s and 1000/min, 1,500 tasks, default
client limits; 4 = 1M follower rows over 100,000 tasks vs a plain DuckDB insert from Arrow;
5 = peak RSS of one task with 40,000 followers and of 800 tasks x 50, by ids and with
--discover; 6 = --discover --full-refresh of 20,000 tasks vs the same tasks by ids;
7 = ``--help`` and ``run --help`` times; 8 = peak RSS of a first run and a re-run by tenant
size (``--tasks N``, repeatable), ~10 followers a task.

``--baseline DIR`` runs our side of cases 1, 2 and 5-8 a second time with the code of another checkout
(its ``sources`` and ``pipelines`` first on PYTHONPATH), back to back, for a before/after.
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


BASELINE: Path | None = None  # --baseline: another checkout's code, for the before side


def code_env(code: Path | None) -> dict[str, str]:
    """Env that makes a child import ``code``'s source and CLI instead of this checkout's."""
    if code is None:
        return {}
    return {"PYTHONPATH": os.pathsep.join(str(code / part) for part in ("sources", "pipelines", "tools"))}


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
    users = users or 500  # the simulator's default user count
    path = workdir / f"ids-{tasks}-{followers_per_task}-{users}.txt"
    script = (
        "import sys; from feishu_simulator import World; "
        f"w = World.generate(tasks={tasks}, seed={SEED}, followers_per_task={followers_per_task}"
        f", users={users}); ids = w.task_ids(); "
        f"open({str(path)!r}, 'w').write(chr(10).join(ids) + chr(10)); "
        "print(sum(len(w.followers(t)) for t in ids))"
    )
    made = subprocess.run([PY, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    return path, int(made.stdout.strip().splitlines()[-1])


def run_ours(
    base_url: str,
    ids: Path | None,
    workdir: Path,
    *flags: str,
    run_dir: Path | None = None,
    config: dict[str, str] | None = None,
    code: Path | None = None,
) -> dict[str, Any]:
    """``feishu-followers run`` as a user runs it; then the rows and dlt's step times.

    Pass the ``run_dir`` of an earlier run to run again into the same pipeline and file;
    ``config`` adds ``sources.feishu_tasks`` settings (as env vars, e.g. rows_per_load).
    """
    import duckdb

    run_dir = run_dir or Path(tempfile.mkdtemp(dir=workdir, prefix="ours-"))
    db = run_dir / "followers.duckdb"
    args = [PY, "-m", "feishu_followers.cli", "run", "--base-url", base_url]
    args += ["--task-ids-file", str(ids)] if ids else []
    args += ["--duckdb", str(db), "--pipelines-dir", str(run_dir / "pipelines"), *flags]
    env = {"SOURCES__FEISHU_TASKS__APP_ID": APP_ID, "SOURCES__FEISHU_TASKS__APP_SECRET": APP_SECRET}
    env.update({f"SOURCES__FEISHU_TASKS__{key.upper()}": value for key, value in (config or {}).items()})
    env.update(code_env(code))
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
        if BASELINE:  # the other checkout's code, right after: the before side of the same run
            before = run_ours(url, ids, workdir, *NO_LIMITS, "--concurrency", "64", code=BASELINE)
            case.figures["baseline_seconds"] = before["seconds"]
            case.figures["baseline_max_rss_mb"] = before["max_rss_mb"]
            case.figures["baseline_speedup"] = rest["seconds"] / before["seconds"]
    assert ours["rows"] == rest["rows"] == expected, (ours["rows"], rest["rows"], expected)
    speedup = rest["seconds"] / ours["seconds"]
    case.figures |= {
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


def versions() -> list[tuple[str, Path | None]]:
    """This checkout's code, and the --baseline checkout's when one is given."""
    return [("ours", None)] + ([("baseline", BASELINE)] if BASELINE else [])


def shapes_case(quick: bool, workdir: Path) -> Case:
    """Case 5: peak RSS of one big task and of many 50-follower tasks, by ids and with --discover."""
    case = Case(5, "peak RSS: one task with 40,000 followers; 800 tasks x 50 followers")
    shapes = [("1 task x 40,000", 1, 40_000), ("800 tasks x 50", 800, 50)]
    if quick:
        shapes = [("1 task x 4,000", 1, 4_000), ("80 tasks x 50", 80, 50)]
    for label, tasks, per_task in shapes:
        users = max(500, per_task)
        ids, expected = task_ids_file(workdir, tasks, per_task, users)
        with simulator(tasks, "--followers-per-task", str(per_task), "--users", str(users)) as url:
            for name, code in versions():
                for how, flags in (("by ids", ()), ("--discover", ("--discover",))):
                    run = run_ours(url, None if flags else ids, workdir, *NO_LIMITS, *flags, code=code)
                    assert run["rows"] == expected, (run["rows"], expected)
                    case.figures[f"{label}, {how}: {name} peak MB"] = run["max_rss_mb"]
                    if name == "ours":
                        rss = run["max_rss_mb"]
                        verdict = "met" if rss <= 256 else "MISSED"
                        case.goals.append(f"{label} {how}: {rss:.0f} MB (goal <= 256 MB): {verdict}")
    return case


def discover_case(quick: bool, workdir: Path) -> Case:
    """Case 6: --discover --full-refresh against the same tasks given by ids (issue 21, item 5)."""
    tasks = 2_000 if quick else 20_000
    case = Case(6, f"{tasks:,} tasks: --discover --full-refresh vs the same tasks by ids")
    ids, expected = task_ids_file(workdir, tasks)
    with simulator(tasks) as url:
        for name, code in versions():
            by_ids = run_ours(url, ids, workdir, *NO_LIMITS, "--concurrency", "64", code=code)
            listed = run_ours(
                url,
                None,
                workdir,
                *NO_LIMITS,
                "--concurrency",
                "64",
                "--discover",
                "--full-refresh",
                code=code,
            )
            assert by_ids["rows"] == listed["rows"] == expected, (by_ids["rows"], listed["rows"], expected)
            case.figures[f"{name}: by ids peak MB"] = by_ids["max_rss_mb"]
            case.figures[f"{name}: --discover --full-refresh peak MB"] = listed["max_rss_mb"]
            case.figures[f"{name}: by ids / --discover seconds"] = (
                f"{by_ids['seconds']:.1f} / {listed['seconds']:.1f}"
            )
    return case


def help_case(quick: bool, workdir: Path) -> Case:
    """Case 7: ``feishu-followers --help`` and ``run --help``, best and median of several starts."""
    case = Case(7, "--help and run --help: seconds from process start to exit")
    repeats = 3 if quick else 7
    for name, code in versions():
        for args in (["--help"], ["run", "--help"]):
            times = sorted(
                run_process([PY, "-m", "feishu_followers.cli", *args], code_env(code)).seconds
                for _ in range(repeats)
            )
            label = " ".join(args)
            case.figures[f"{name}: {label} best / median s"] = (
                f"{times[0]:.3f} / {times[len(times) // 2]:.3f}"
            )
            if name == "ours":
                verdict = "met" if times[len(times) // 2] <= 0.3 else "MISSED"
                case.goals.append(
                    f"{label}: median {times[len(times) // 2]:.2f} s (goal <= 0.3 s): {verdict}"
                )
    return case


def scale_case(sizes: list[int], workdir: Path) -> Case:
    """Case 8: peak RSS of a first run and of a re-run (previous state read) by tenant size."""
    case = Case(8, f"peak RSS by tenant size ({', '.join(f'{n:,}' for n in sizes)} tasks x 10 followers)")
    flags = (*NO_LIMITS, "--concurrency", "64")
    for tasks in sizes:
        ids, expected = task_ids_file(workdir, tasks, followers_per_task=10)
        with simulator(tasks, "--followers-per-task", "10") as url:
            for name, code in versions():
                first = run_ours(url, ids, workdir, *flags, code=code)
                again = run_ours(url, ids, workdir, *flags, run_dir=first["run_dir"], code=code)
                assert first["rows"] == again["rows"] == expected, (first["rows"], again["rows"], expected)
                case.figures[f"{tasks:,} tasks, {name}: first / re-run peak MB"] = (
                    f"{first['max_rss_mb']:.0f} / {again['max_rss_mb']:.0f}"
                )
                case.figures[f"{tasks:,} tasks, {name}: first / re-run seconds"] = (
                    f"{first['seconds']:.1f} / {again['seconds']:.1f}"
                )
    return case


def run_case(number: int, quick: bool, workdir: Path, sizes: list[int] | None = None) -> Case:
    if number == 1:
        return compare_case(1, 1_000 if quick else 5_000, 20, 3, workdir)
    if number == 2:
        return compare_case(2, 1_000 if quick else 5_000, 0, 5, workdir)
    if number == 3:
        return quota_case(300 if quick else 1_500, workdir)
    if number == 4:
        return million_case(10_000 if quick else 100_000, workdir)
    if number == 5:
        return shapes_case(quick, workdir)
    if number == 6:
        return discover_case(quick, workdir)
    if number == 7:
        return help_case(quick, workdir)
    if number == 8:
        return scale_case(sizes or ([10_000] if quick else [10_000, 100_000]), workdir)
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
    parser.add_argument("--case", type=int, action="append", choices=range(1, 9))
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    parser.add_argument("--tasks", type=int, action="append", help="case 8's tenant sizes (repeatable)")
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="cases 1, 2, 5-8 also with another checkout's code"
    )
    args = parser.parse_args(argv)
    global BASELINE
    BASELINE = args.baseline.resolve() if args.baseline else None
    numbers = list(range(1, 9)) if args.all else sorted(set(args.case or []))
    if not numbers:
        parser.error("give --case N (repeatable) or --all")
    info = machine()
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="feishu-bench-") as tmp:
        for number in numbers:
            case = run_case(number, args.quick, Path(tmp), args.tasks)
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
