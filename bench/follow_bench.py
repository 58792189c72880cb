"""``follow`` over a million events: does its memory stay flat however long it runs (issue 19)?

The simulator runs in this process with a generated tenant (``--tasks``, default 20,000), first
loaded once by ``run --discover``. Then ``feishu-followers follow`` runs as a user runs it, its own
process, and this script pushes ``--events`` webhook events to its receiver (v2
``task.task.update_user_access_v2``, encrypted and signed as Feishu does, ``--concurrency`` in
flight), ``--in-a-row`` events (default 20) for each task of the tenant in turn (a task edited in
a burst, as people do; every task is marked more than once over the run), as fast as ``follow``
takes them. A batch then reads a few hundred tasks, not thousands: the two cores go to the
receiver and the journal rather than to re-reading the tenant. Every ``--change-every``-th event
comes with a real change in the simulator first (a follower added to the task, or one removed
once it has many), so the batches have something to load. When every event is answered, the
script waits until ``task_followers`` equals the simulator's followers of every task (exact),
then stops ``follow`` with SIGTERM.

``follow``'s ``VmRSS`` and ``RssAnon`` are sampled every second (a line a minute shows the trend
while it runs); reported: after warm-up (the first sample after 5 % of the events), at 10, 50 and
100 % of the events, the maximum, the number of batches, the answer statuses, exactness and the
exit code on SIGTERM. ``kill -USR1`` the script to stop pushing early and finish with the events
sent so far (the figures then say how many).

    python bench/follow_bench.py                                   # 1,000,000 events, 20,000 tasks
    python bench/follow_bench.py --events 20000 --tasks 5000       # a smoke run (~1 minute)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import duckdb

from feishu_simulator import Faults, Simulator, World
from feishu_simulator.events import envelopes
from feishu_simulator.events.sealing import seal

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The same tenant, app, CLI and environment as the change-capture bench.
from changes_bench import (  # noqa: E402
    APP_ID,
    APP_SECRET,
    DATASET,
    KEY,
    NO_LIMITS,
    READY,
    REPO,
    TOKEN,
    cli,
    env_for,
    wait,
)

ENOUGH = threading.Event()  # SIGUSR1: stop pushing, and finish the run with the events sent so far
MANY_FOLLOWERS = 40  # a task with this many followers loses one instead of gaining one


def status_mb(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``RssAnon`` of a process, in MB (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {
        line.split(":")[0]: int(line.split()[1]) / 1024
        for line in lines
        if line.startswith(("VmRSS:", "RssAnon:"))
    }


class Follow:
    """``follow`` running: its stderr counted (batches) and its last lines kept, never all of them."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stderr=subprocess.PIPE, text=True)
        self.url = ""
        self.ready = threading.Event()
        self.batches: dict[str, int] = {}
        self.last_lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if match := READY.search(line):
                self.url = match.group(1)
                self.ready.set()
            if match := re.search(r"batch \((\w+)\)", line):
                self.batches[match.group(1)] = self.batches.get(match.group(1), 0) + 1
            self.last_lines = [*self.last_lines[-9:], line.rstrip("\n")]
        self.ready.set()


def table_followers(path: Path) -> set[tuple[str, str]] | None:
    """``task_followers`` as (task, follower) pairs; None while a batch holds the file."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute(f"select task_id, follower_id from {DATASET}.task_followers").fetchall()
    except duckdb.Error:
        return None
    return {(str(t), str(f)) for t, f in rows}


def world_followers(world: World, tasks: list[str]) -> set[tuple[str, str]]:
    """What v2 shows of every task (users, then apps): every task was marked, so v2 read it last."""
    with world.lock:
        return {(t, f) for t in tasks for f, _ in world.v2_followers(t)}


def change(world: World, task_id: str) -> None:
    """A real follower change: one added, or one removed once the task has many."""
    followers = world.followers(task_id)
    if len(followers) >= MANY_FOLLOWERS:
        world.remove_follower(task_id, followers[0])
    else:
        world.add_follower(task_id)


class Pusher:
    """The events, pushed as fast as the receiver answers; what was sent and answered so far."""

    def __init__(self, url: str, world: World, tasks: list[str], tenant_key: str, args: Any) -> None:
        self.url, self.world, self.tasks, self.args = url, world, tasks, args
        self.origin = envelopes.Origin(APP_ID, tenant_key, TOKEN)
        self.answered = 0
        self.changes = 0
        self.statuses: dict[int, int] = {}

    async def run(self) -> None:
        counter = iter(range(self.args.events))

        async def worker(session: aiohttp.ClientSession) -> None:
            for n in counter:
                if ENOUGH.is_set():
                    return
                task_id = self.tasks[n // self.args.in_a_row % len(self.tasks)]
                if n % self.args.change_every == 0:
                    change(self.world, task_id)
                    self.changes += 1
                payload = envelopes.v2_envelope(
                    self.origin,
                    f"follow-bench-{n:09d}",
                    "task.task.update_user_access_v2",
                    int(time.time() * 1000),
                    envelopes.v2_task_event(task_id, ("task_followers_update",)),
                )
                body, headers = seal(payload, KEY)
                async with session.post(self.url, data=body, headers=headers) as answer:
                    await answer.read()
                self.statuses[answer.status] = self.statuses.get(answer.status, 0) + 1
                self.answered += 1

        connector = aiohttp.TCPConnector(limit=self.args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(worker(session) for _ in range(self.args.concurrency)))


def sample_rss(
    pid: int, pusher: Pusher, stop: threading.Event, samples: list[tuple[float, int, float, float]]
):
    started = time.monotonic()
    while not stop.wait(1.0):
        status = status_mb(pid)
        if status:
            samples.append((time.monotonic() - started, pusher.answered, status["VmRSS"], status["RssAnon"]))
            if len(samples) % 60 == 0:  # a line a minute: the trend shows while it runs
                print(
                    f"{samples[-1][0]:.0f} s: {pusher.answered} events, RSS {status['VmRSS']:.1f} MB",
                    flush=True,
                )


def at_share(samples: list[tuple[float, int, float, float]], events: int, share: float) -> float | None:
    """RSS of the first sample taken once ``share`` of the events were answered."""
    return next((round(rss, 1) for _, answered, rss, _ in samples if answered >= share * events), None)


def summary(samples: list[tuple[float, int, float, float]], events: int) -> dict[str, Any]:
    warm = [s for s in samples if s[1] >= 0.05 * events]
    return {
        "rss_mb_first_sample": round(samples[0][2], 1) if samples else None,
        "rss_mb_after_warm_up_5pct": at_share(samples, events, 0.05),
        "rss_mb_at_10pct": at_share(samples, events, 0.10),
        "rss_mb_at_50pct": at_share(samples, events, 0.50),
        "rss_mb_at_100pct": at_share(samples, events, 1.0),
        "rss_mb_max": round(max(s[2] for s in samples), 1) if samples else None,
        "rss_mb_after_warm_up_min_max": [round(min(s[2] for s in warm), 1), round(max(s[2] for s in warm), 1)]
        if warm
        else None,
        "anon_mb_after_warm_up_min_max": [
            round(min(s[3] for s in warm), 1),
            round(max(s[3] for s in warm), 1),
        ]
        if warm
        else None,
        # every tenth of the run: (seconds, events answered, RSS MB)
        "rss_every_tenth": [
            (round(t), answered, round(rss, 1))
            for t, answered, rss, _ in samples[:: max(1, len(samples) // 10)]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--change-every", type=int, default=10, help="a real change every Nth event")
    parser.add_argument("--every", default="5s", help="follow's --every")
    parser.add_argument(
        "--in-a-row", type=int, default=20, help="consecutive events for one task before the next task"
    )
    args = parser.parse_args(argv)
    if args.events < args.tasks * args.in_a_row:  # the check compares every task with what v2 shows
        parser.error(
            f"--events must mark every task: at least --tasks x --in-a-row ({args.tasks * args.in_a_row})"
        )
    signal.signal(signal.SIGUSR1, lambda *_: ENOUGH.set())
    results: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count(), "loadavg_before": os.getloadavg()}
    print(json.dumps(results), flush=True)
    world = World.generate(tasks=args.tasks, seed=1)
    tasks = world.task_ids()
    with (
        tempfile.TemporaryDirectory(prefix="follow-bench-") as folder,
        Simulator(world, faults=Faults(), app_id=APP_ID, app_secret=APP_SECRET) as sim,
    ):
        work = Path(folder)
        database = work / "bench.duckdb"
        flags = ["--duckdb", str(database), "--pipelines-dir", str(work / "p"), "--journal", str(work / "j")]
        first = subprocess.run(
            cli("run", "--discover", "--quiet", *NO_LIMITS, *flags), env=env_for(sim), cwd=work,
            capture_output=True, text=True,
        )  # fmt: skip
        results["first_load"] = {"exit": first.returncode, "last": (first.stdout or first.stderr)[-300:]}
        print(json.dumps(results["first_load"]), flush=True)
        follow = Follow(
            cli("follow", *NO_LIMITS, *flags, "--port", "0", "--every", args.every), env_for(sim), work
        )
        follow.ready.wait(120)
        if not follow.url:
            raise SystemExit(f"follow did not start: {follow.last_lines}")
        try:
            pusher = Pusher(follow.url, world, tasks, sim.events.settings.tenant_key, args)
            samples: list[tuple[float, int, float, float]] = []
            stop = threading.Event()
            sampler = threading.Thread(
                target=sample_rss, args=(follow.proc.pid, pusher, stop, samples), daemon=True
            )
            sampler.start()
            started = time.monotonic()
            asyncio.run(pusher.run())
            pushed_seconds = time.monotonic() - started
            print(
                f"{pusher.answered} events answered in {pushed_seconds:.0f} s: {pusher.statuses}", flush=True
            )
            truth = world_followers(world, tasks)
            last: list[set[tuple[str, str]] | None] = [None]

            def exact() -> bool:
                last[0] = table_followers(database) or last[0]
                return last[0] == truth

            try:
                wait(exact, "every change to be loaded", 900, every=2.0)
            except SystemExit:
                table = last[0] or set()
                print(f"not exact: {len(truth - table)} missing, {len(table - truth)} extra, e.g. "
                      f"{sorted(truth - table)[:3]} / {sorted(table - truth)[:3]}", flush=True)  # fmt: skip
                raise
            loaded_seconds = time.monotonic() - started
            stop.set()
            sampler.join(5)
            follow.proc.send_signal(signal.SIGTERM)
            code = follow.proc.wait(120)
        finally:
            if follow.proc.poll() is None:  # the script failed: leave no follow behind
                follow.proc.kill()
        results.update(
            events=pusher.answered,
            statuses=pusher.statuses,
            real_changes=pusher.changes,
            push_seconds=round(pushed_seconds, 1),
            events_per_second=round(pusher.answered / pushed_seconds),
            all_loaded_after_seconds=round(loaded_seconds, 1),
            exact=True,  # the wait above returns only once the table equals the simulator's followers
            follower_rows=len(truth),
            batches=follow.batches,
            exit_on_sigterm=code,
            last_lines=follow.last_lines[-3:],
            loadavg_after=os.getloadavg(),
            **summary(samples, pusher.answered),
        )
    print(json.dumps(results, indent=1, default=str), flush=True)
    out = REPO / "bench" / "results" / f"follow-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({**results, "rss_samples": samples}, default=str))
    print(f"written {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
