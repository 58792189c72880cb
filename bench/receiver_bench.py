"""The event receiver's throughput, answer times and memory: encrypted webhook events into ``listen``.

``feishu-followers listen`` runs pinned to one core (``taskset``), its journal in a temporary
folder; the load comes from this process pinned to another core: ``--events`` distinct events
(v2 ``task.task.update_user_access_v2`` on 100,000 task guids), each encrypted and signed as
Feishu does, ``--concurrency`` requests in flight (Feishu pushes in parallel). Reported: events
a second (and per second of the receiver's own CPU time: what one core does, however busy
the shared machine is), p50/p99/max answer time, the receiver's RSS over the run (sampled every second from
/proc), the machine's load average before and after (the machine is shared).

    python bench/receiver_bench.py                       # 1,000,000 events
    python bench/receiver_bench.py --events 100000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from feishu_simulator.events import envelopes
from feishu_simulator.events.sealing import seal

TOKEN, KEY = "bench-verification-token", "bench-encrypt-key"
READY = re.compile(r"on (http://\S+/feishu/events)")


def start_receiver(journal: Path, core: int) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    env.update(
        SOURCES__FEISHU_TASKS__CREDENTIALS__VERIFICATION_TOKEN=TOKEN,
        SOURCES__FEISHU_TASKS__CREDENTIALS__ENCRYPT_KEY=KEY,
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    command = ["taskset", "-c", str(core), sys.executable, "-m", "feishu_followers.cli", "listen"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--journal", str(journal)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    for line in process.stderr:
        match = READY.search(line)
        if match:
            return process, match.group(1)
    raise SystemExit(f"listen did not start (exit {process.wait()})")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bodies(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


async def load(url: str, events: int, concurrency: int, pid: int) -> dict[str, object]:
    origin = envelopes.Origin("cli_bench", "2ed263bf32cf1651", TOKEN)
    guids = bodies(100_000)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    rss: list[tuple[float, float]] = []
    started = time.perf_counter()
    cpu_before = cpu_seconds(pid)
    counter = iter(range(events))

    async def sample() -> None:
        while True:
            rss.append((time.perf_counter() - started, rss_mb(pid)))
            await asyncio.sleep(1.0)

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in counter:
            payload = envelopes.v2_envelope(
                origin,
                f"bench-{n:09d}",
                "task.task.update_user_access_v2",
                int(time.time() * 1000),
                envelopes.v2_task_event(guids[n % len(guids)], ("task_followers_update",)),
            )
            body, headers = seal(payload, KEY)
            sent = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
            latencies.append(time.perf_counter() - sent)
            statuses[answer.status] = statuses.get(answer.status, 0) + 1

    sampler = asyncio.create_task(sample())
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    sampler.cancel()
    rss.append((elapsed, rss_mb(pid)))
    latencies.sort()
    tenth = [mb for t, mb in rss if t >= elapsed * 0.1]
    return {
        "events": events,
        "concurrency": concurrency,
        "seconds": round(elapsed, 1),
        "events_per_second": round(events / elapsed),
        # what one core does whatever else shares it: events per second of the receiver's own CPU
        "receiver_cpu_seconds": round(cpu, 1),
        "events_per_receiver_cpu_second": round(events / cpu) if cpu else None,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "statuses": statuses,
        "rss_mb_start": round(rss[0][1], 1),
        "rss_mb_at_10pct": round(tenth[0], 1) if tenth else None,
        "rss_mb_max": round(max(mb for _, mb in rss), 1),
        "rss_mb_end": round(rss[-1][1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--receiver-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.load_core})
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="receiver_bench_") as folder:
        journal = Path(folder) / "journal.sqlite"
        process, url = start_receiver(journal, args.receiver_core)
        try:
            result = asyncio.run(load(url, args.events, args.concurrency, process.pid))
        finally:
            process.terminate()
            process.wait(60)
        result["journal_mb"] = round(sum(p.stat().st_size for p in Path(folder).iterdir()) / 2**20, 1)
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
