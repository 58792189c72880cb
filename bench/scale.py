"""Issue 19's load-side cases: big tenants with the default options, peak RSS, exactness, recovery.

Each case runs ``feishu-followers run`` as a user runs it, in its own process, against the
simulator in another (as ``run_bench.py`` does), and reports the CLI process's peak RSS
(``os.wait4``: ``ru_maxrss``, and ``VmHWM`` sampled, which count the pages of shared libraries
too) beside its peak anonymous memory (``RssAnon``, sampled every 0.25 s: what the process
itself allocated), the wall time, and whether the tables are exact: ``task_followers`` holds
every follow of the tenant once, and the history's open intervals are exactly ``task_followers``.

    python bench/scale.py --case tenant                 # 100,000 tasks, ~1.1M follows, DuckDB
    python bench/scale.py --case tenant --before /work/main   # the same with another checkout, side by side
    python bench/scale.py --all                         # every case (an hour or more)
    python bench/scale.py --all --quick                 # 10x smaller, a smoke run

Cases: ``tenant`` (100,000 tasks, the simulator's realistic mix, default options, DuckDB),
``discover`` (the same tenant listed with ``--discover``), ``postgres`` (the tenant into a
PostgreSQL server the script starts), ``one-big-task`` (one task, 40,000 follows),
``small-tasks`` (800 tasks x 50), ``million`` (1,000,000 tasks, ~10M follows, in parts: RSS over
time shows whether it stays flat), ``recovery`` (the tenant's run killed in its second load,
then a plain run; and a run whose DuckDB limit is too small, then a plain run: each must end
exact, history consistent). ``--before DIR`` runs the same case with the code of another
checkout (its ``.venv``) first, on the same machine state.

``--worker-mb N`` runs each CLI run as a worker of N MB would: in a memory cgroup of its own with a
hard limit of N MB and no swap (needs root and the cgroup v1 or v2 memory controller). The kernel
counts what a container's limit counts (the process's memory and the page cache it dirties, which it
reclaims under the limit), and kills the run if it cannot; the figures add the cgroup's peak, how
often it hit the limit, and whether it was killed. The page cache is dropped before each run so
that the libraries it reads are charged to it, as in a fresh container.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_bench  # noqa: E402  (the simulator, the tenant's ids, the machine)
from worker_cgroup import Worker  # noqa: E402  (--worker-mb)

REPO = run_bench.REPO
DATASET = "feishu_tasks"
PIPELINE_NAME = "feishu_followers"  # feishu_followers.options.PIPELINE_NAME


@dataclass
class Run:
    """One CLI run: exit code, wall time, peak RSS (wait4) and the RSS it had over time."""

    code: str
    returncode: int
    seconds: float
    cpu_seconds: float  # user + system, from os.wait4: unlike the wall time, barely moved by the load
    max_rss_mb: float  # ru_maxrss from os.wait4
    peak_rss_mb: float  # VmHWM, sampled: the same peak, as the kernel counts it after exec
    max_anon_mb: float
    rss_quartiles_mb: list[float]  # RSS at 25, 50, 75 and 100 % of the run's time (flatness)
    anon_quartiles_mb: list[float]  # the same of RssAnon: what the process allocated, not its libraries
    last_stderr: str
    major_faults: int = 0  # pages read from disk again (ru_majflt): a worker too small rereads its libraries
    checks: dict[str, Any] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)  # --worker-mb: the cgroup's figures


def _status(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {
        line.split(":")[0]: int(line.split()[1]) // 1024
        for line in lines
        if line.startswith(("VmRSS:", "RssAnon:", "VmHWM:"))
    }


def run_cli(code: Path, args: list[str], env: dict[str, str], kill_when: Any = None) -> Run:
    """``python -m feishu_followers.cli run ARGS`` with the interpreter of checkout ``code``."""
    python = code / ".venv" / "bin" / "python"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    full_env.update({"RUNTIME__DLTHUB_TELEMETRY": "false"}, **env)
    worker = Worker() if Worker.limit_mb else None
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [str(python), "-m", "feishu_followers.cli", "run", *args],
            cwd=code,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            preexec_fn=worker.enter if worker else None,
        )
        samples: list[tuple[float, int, int]] = []
        high_water = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                status = _status(proc.pid)
                if status:
                    samples.append((time.monotonic() - started, status["VmRSS"], status["RssAnon"]))
                    high_water[0] = max(high_water[0], status["VmHWM"])
                if kill_when is not None and kill_when(samples):
                    proc.send_signal(signal.SIGKILL)
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        err.seek(0)
        stderr = err.read()
    seconds = time.monotonic() - started
    worker_figures = worker.figures() if worker else {}
    if worker:
        worker.remove()
    quartiles, anon_quartiles = [], []
    for share in (0.25, 0.5, 0.75, 1.0):
        before = [(rss, anon) for at, rss, anon in samples if at <= share * seconds]
        quartiles.append(float(max(rss for rss, _ in before)) if before else 0.0)
        anon_quartiles.append(float(max(anon for _, anon in before)) if before else 0.0)
    return Run(
        str(code),
        os.waitstatus_to_exitcode(status),
        seconds,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        float(high_water[0]),
        float(max((anon for _, _, anon in samples), default=0)),
        quartiles,
        anon_quartiles,
        (stderr.strip().splitlines() or [""])[-1][:400],
        major_faults=usage.ru_majflt,
        worker=worker_figures,
    )


# ---------------------------------------------------------------------------- what the tables hold
def duckdb_checks(path: Path, expected: int) -> dict[str, Any]:
    """Read in a child process: DuckDB's memory must not grow this one (see run_bench.task_ids_file)."""
    if not path.exists():
        return {"loaded": False}
    script = (
        "import json, sys, duckdb; sys.path.insert(0, 'bench'); import scale; "
        f"con = duckdb.connect({str(path)!r}, read_only=True); "
        "con.execute('set enable_progress_bar = false'); "
        f"print(json.dumps(scale._checks(lambda sql: con.execute(sql).fetchall()[0][0], {expected})))"
    )
    read = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    if read.returncode:
        return {"loaded": False, "error": read.stderr.strip().splitlines()[-1][:200]}
    return dict(json.loads(read.stdout.strip().splitlines()[-1]))


def postgres_checks(url: str, expected: int) -> dict[str, Any]:
    import psycopg2

    con = psycopg2.connect(url)
    try:
        with con.cursor() as cursor:

            def one(sql: str) -> Any:
                cursor.execute(sql)
                return cursor.fetchone()[0]

            return _checks(one, expected)
    finally:
        con.close()


def _checks(one: Any, expected: int) -> dict[str, Any]:
    followers = f"{DATASET}.task_followers"
    history = f"{DATASET}.task_follower_history"
    key = "task_id, follower_id, user_id_type"
    try:
        rows = one(f"select count(*) from {followers}")
        distinct = one(f"select count(*) from (select distinct {key} from {followers}) d")
        open_rows = one(f"select count(*) from {history} where valid_to is null")
        mismatched = one(
            f"select count(*) from ((select {key} from {followers} except "
            f"select {key} from {history} where valid_to is null) union all "
            f"(select {key} from {history} where valid_to is null except select {key} from {followers})) d"
        )
    except Exception as exc:  # a table missing after a failed run
        return {"loaded": False, "error": str(exc).splitlines()[0][:200]}
    return {
        "follower_rows": rows,
        "exact": rows == distinct == expected,
        "history_consistent": mismatched == 0 and open_rows == rows,
    }


# ---------------------------------------------------------------------------- the tenant and the simulator
@dataclass
class Tenant:
    tasks: int
    followers_per_task: int | None
    users: int | None  # the simulator's default (500) unless a task needs more followers
    ids: Path
    expected: int


def make_tenant(workdir: Path, tasks: int, followers_per_task: int | None = None) -> Tenant:
    users = followers_per_task + 1_000 if followers_per_task and followers_per_task > 500 else None
    ids, expected = run_bench.task_ids_file(workdir, tasks, followers_per_task, users)
    return Tenant(tasks, followers_per_task, users, ids, expected)


@contextmanager
def simulator_for(tenant: Tenant) -> Iterator[str]:
    extra = ["--followers-per-task", str(tenant.followers_per_task)] if tenant.followers_per_task else []
    extra += ["--users", str(tenant.users)] if tenant.users else []
    with run_bench.simulator(tenant.tasks, *extra) as url:
        yield url


def credentials(url: str) -> dict[str, str]:
    return {
        "SOURCES__FEISHU_TASKS__APP_ID": run_bench.APP_ID,
        "SOURCES__FEISHU_TASKS__APP_SECRET": run_bench.APP_SECRET,
        "SOURCES__FEISHU_TASKS__BASE_URL": url,
    }


def duckdb_args(run_dir: Path) -> list[str]:
    return ["--duckdb", str(run_dir / "followers.duckdb"), "--pipelines-dir", str(run_dir / "pipelines")]


UNPACED = [*run_bench.NO_LIMITS, "--quiet"]


# ---------------------------------------------------------------------------- cases
def case_duckdb(
    tenant: Tenant, workdir: Path, codes: list[Path], *flags: str, ids: bool = True
) -> dict[str, Any]:
    """One run per checkout of ``codes`` into a fresh DuckDB file, default options."""
    results = {}
    with simulator_for(tenant) as url:
        for code in codes:
            run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="run-"))
            given = ["--task-ids-file", str(tenant.ids)] if ids else []
            run = run_cli(code, [*given, *duckdb_args(run_dir), *UNPACED, *flags], credentials(url))
            run.checks = duckdb_checks(run_dir / "followers.duckdb", tenant.expected)
            if run.returncode:  # the run after a failed one: the wedge
                again = run_cli(code, [*given, *duckdb_args(run_dir), *UNPACED, *flags], credentials(url))
                run.checks["next_run"] = {"returncode": again.returncode, "seconds": again.seconds}
            results[label(code)] = asdict(run)
    return results


def case_postgres(tenant: Tenant, workdir: Path, codes: list[Path]) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.pg_server import PostgresServer, _free_port, _unprivileged_user, find_server_bin

    bindir = find_server_bin()
    if bindir is None:
        return {"skipped": "no PostgreSQL server binaries"}
    root = Path(tempfile.mkdtemp(prefix="feishu-pg-bench-"))
    user = _unprivileged_user()
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bindir, root, _free_port(), user)
    server.init()
    server.start()
    results = {}
    try:
        with simulator_for(tenant) as url:
            for code in codes:
                database = server.new_database()
                run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="pg-"))
                args = ["--task-ids-file", str(tenant.ids), "--destination", "postgres"]
                args += ["--pipelines-dir", str(run_dir / "pipelines"), *UNPACED]
                env = {**credentials(url), "DESTINATION__POSTGRES__CREDENTIALS": database}
                run = run_cli(code, args, env)
                run.checks = postgres_checks(database, tenant.expected)
                results[label(code)] = asdict(run)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)  # the server's data: gigabytes after a big case
    return results


def case_recovery(tenant: Tenant, workdir: Path, codes: list[Path]) -> dict[str, Any]:
    """Killed in its second load, then a plain run; too little memory, then a plain run."""
    results: dict[str, Any] = {}
    with simulator_for(tenant) as url:
        for code in codes:
            run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="kill-"))
            args = ["--task-ids-file", str(tenant.ids), *duckdb_args(run_dir), *UNPACED]
            killed = run_cli(code, args, credentials(url), kill_when=lambda _, d=run_dir: _in_second_load(d))
            plain = run_cli(code, args, credentials(url))
            plain.checks = duckdb_checks(run_dir / "followers.duckdb", tenant.expected)
            starved_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="oom-"))
            starved_args = ["--task-ids-file", str(tenant.ids), *duckdb_args(starved_dir), *UNPACED]
            starved = run_cli(code, [*starved_args, "--duckdb-memory-limit", "8MB"], credentials(url))
            after = run_cli(code, starved_args, credentials(url))
            after.checks = duckdb_checks(starved_dir / "followers.duckdb", tenant.expected)
            results[label(code)] = {
                "killed": asdict(killed),
                "next_plain_run": asdict(plain),
                "starved_8MB": asdict(starved),
                "next_run_default": asdict(after),
            }
    return results


def _in_second_load(run_dir: Path) -> bool:
    """A first load is complete and a second one is being loaded.

    The pipeline's working folder is ``feishu_followers`` (``options.PIPELINE_NAME``; not imported:
    this process stays small, see ``run_bench.task_ids_file``). It was ``feishu_tasks`` here before,
    a folder that never exists: the "killed" run was never killed.
    """
    load = run_dir / "pipelines" / PIPELINE_NAME / "load"
    loaded, normalized = load / "loaded", load / "normalized"
    return loaded.is_dir() and any(loaded.iterdir()) and normalized.is_dir() and any(normalized.iterdir())


def label(code: Path) -> str:
    return "this checkout" if code.resolve() == REPO else f"before ({code})"


SIZES = {  # case: (tasks, followers per task or None for the realistic mix), full and --quick
    "tenant": ((100_000, None), (10_000, None)),
    "discover": ((100_000, None), (10_000, None)),
    "postgres": ((100_000, None), (10_000, None)),
    "one-big-task": ((1, 40_000), (1, 40_000)),
    "small-tasks": ((800, 50), (800, 50)),
    "million": ((1_000_000, None), (100_000, None)),
    "recovery": ((100_000, None), (10_000, None)),
}


def run_case(name: str, quick: bool, workdir: Path, codes: list[Path]) -> dict[str, Any]:
    tasks, per_task = SIZES[name][1 if quick else 0]
    tenant = make_tenant(workdir, tasks, per_task)
    figures: dict[str, Any] = {"tasks": tasks, "expected_follows": tenant.expected}
    if name == "postgres":
        figures["runs"] = case_postgres(tenant, workdir, codes)
    elif name == "recovery":
        figures["runs"] = case_recovery(tenant, workdir, codes)
    elif name == "discover":
        figures["runs"] = case_duckdb(tenant, workdir, codes, "--discover", ids=False)
    else:
        figures["runs"] = case_duckdb(tenant, workdir, codes)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", choices=list(SIZES))
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", type=Path, help="another checkout (with its .venv) to run first")
    parser.add_argument("--worker-mb", type=int, help="run each CLI run in a memory cgroup of this many MB")
    args = parser.parse_args(argv)
    Worker.limit_mb = args.worker_mb
    names = list(SIZES) if args.all else args.case or []
    if not names:
        parser.error("give --case NAME (repeatable) or --all")
    codes = [*([args.before] if args.before else []), REPO]
    info = run_bench.machine()
    info["load_average"] = os.getloadavg()
    print(json.dumps(info), flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="feishu-scale-") as tmp:
        for name in names:
            results[name] = run_case(name, args.quick, Path(tmp), codes)
            print(f"== {name}: {json.dumps(results[name], indent=1)}", flush=True)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"scale-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps({"machine": info, "cases": results}, indent=2))
    print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
