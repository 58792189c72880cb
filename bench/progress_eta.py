"""How honest the live ETA is: a 3,000-task run at Feishu's default pacing, as a new user runs it.

    python bench/progress_eta.py                  # terminal run, then the same run under "cron" (~7 min)
    python bench/progress_eta.py --only terminal  # just the terminal run (~3.5 min)

Starts ``feishu-followers simulate --tasks 3000 --latency-ms 20``, then ``feishu-followers run
--discover`` on a fresh DuckDB file under a pseudo-terminal, timestamps every frame of the live
display and compares each ETA shown with the time that was really left (until the fetch ended,
and until the process exited). The "cron" run has no terminal: it counts the progress lines
(one per 30 s expected), checks them for carriage returns and colours, and parses ``--json``.
docs/progress.md has the figures of one such measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PY = sys.executable
CLI = [PY, "-m", "feishu_followers.cli"]
TASKS = 3000
SNAPSHOT_AT = 31.0  # a frame to show in docs/progress.md: the minute window holds the run
SGR = re.compile(r"\x1b\[[0-9;]*m")
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FRAME = re.compile(r"fetching followers\s.*?([\d,]+)/([\d,]+)(\+?) tasks\s+(\d+)%\s+ETA (>=)?(\S+)")
FINAL_LINE = re.compile(  # the permanent lines and the summary, not the live block's
    r"✓|✗|feishu-followers:|  (tasks:|followers loaded:|requests:|dlt steps:|paced |next:|not |stopped|note:)"
)
ETA_WORDS = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


@contextmanager
def simulator(tasks: int) -> Iterator[str]:
    server = subprocess.Popen(
        [*CLI, "simulate", "--tasks", str(tasks), "--latency-ms", "20", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        yield next(word for word in line.split() if word.startswith("http://"))
    finally:
        server.terminate()
        server.wait(timeout=10)


def env_for(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update(
        SOURCES__FEISHU_TASKS__APP_ID="cli_demo",
        SOURCES__FEISHU_TASKS__APP_SECRET="demo-secret",
        SOURCES__FEISHU_TASKS__BASE_URL=base_url,
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    return env


def seconds_of(words: str) -> float | None:
    match = ETA_WORDS.fullmatch(words)
    if words == "unknown" or not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def terminal_run(base_url: str, folder: Path) -> dict:
    """The run under a pseudo-terminal: (time, done, total, ETA) per frame, and when things ended."""
    parent, child = pty.openpty()
    import fcntl
    import termios

    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    args = ["run", "--discover", "--duckdb", str(folder / "t.duckdb"), "--pipelines-dir", str(folder / "p")]
    env = {**env_for(base_url), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    started = time.monotonic()
    proc = subprocess.Popen([*CLI, *args], stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    chunks: list[tuple[float, str]] = []
    while True:
        if select.select([parent], [], [], 0.5)[0]:
            try:
                data = os.read(parent, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append((time.monotonic() - started, data.decode(errors="replace")))
        elif proc.poll() is not None:
            break
    exited = time.monotonic() - started
    proc.wait()
    frames, fetch_ended, text, snapshot = [], None, "", ""
    for at, chunk in chunks:
        plain = SGR.sub("", chunk)
        text += plain
        for match in FRAME.finditer(plain):
            done, total, growing, _, lower, eta = match.groups()
            counts = int(done.replace(",", "")), int(total.replace(",", ""))
            frames.append((at, *counts, bool(growing or lower), seconds_of(eta)))
        if not snapshot and at >= SNAPSHOT_AT and FRAME.search(plain):
            block = CSI.sub("", plain[plain.index("fetching followers") - 2 :])  # from the spinner
            snapshot = "\n".join(line.rstrip() for line in re.split(r"[\r\n]+", block)[:5] if line.strip())
        if fetch_ended is None and "✓ fetched" in plain:
            fetch_ended = at
    return {
        "code": proc.returncode,
        "frames": frames,
        "fetch_ended": fetch_ended,
        "exited": exited,
        "text": text,
        "snapshot": snapshot,
    }


def report_terminal(run: dict) -> None:
    frames, fetch_ended, exited = run["frames"], run["fetch_ended"], run["exited"]
    first = frames[0][0]
    fetch_span = fetch_ended - first
    print(
        f"exit code {run['code']}; fetch shown {first:.1f}-{fetch_ended:.1f} s; process ended {exited:.1f} s"
    )
    warnings = [line for line in run["text"].splitlines() if "warn" in line.lower()]
    totals = sorted({frame[2] for frame in frames})
    print(f"frames {len(frames)}; warning lines: {len(warnings)}; totals shown: {totals[:3]}...{totals[-1]}")
    print(" t (s)  done/total   ETA shown  left (fetch)  left (run)  error vs fetch  vs run")
    relative, absolute, within = [], [], 0
    last_printed = -10.0
    for at, done, total, lower, eta in frames:
        if eta is None:
            continue
        left_fetch, left_run = fetch_ended - at, exited - at
        error_fetch = (eta - left_fetch) / left_fetch if left_fetch > 0 else 0.0
        error_run = (eta - left_run) / left_run if left_run > 0 else 0.0
        if at - first >= 0.1 * fetch_span and left_fetch > 0:  # past 10% of the fetch
            if left_fetch >= 10:
                relative.append(abs(error_fetch))
                within += abs(error_fetch) <= 0.2
            else:
                absolute.append(abs(eta - left_fetch))
        if at - last_printed >= 10 or at == frames[-1][0]:
            last_printed = at
            mark = ">=" if lower else "  "
            print(f"{at:6.1f}  {done:5d}/{total:<5d}  {mark}{eta:7.0f}   {left_fetch:9.1f}   {left_run:9.1f}"
                  f"   {error_fetch:+10.1%}   {error_run:+7.1%}")  # fmt: skip
    print(f"the live block at {SNAPSHOT_AT:.0f} s:")
    for line in run["snapshot"].splitlines():
        print("  | " + line)
    print("the screen at the end:")
    for line in re.split(r"[\r\n]+", CSI.sub("", run["text"])):
        if FINAL_LINE.match(line):
            print("  | " + line.rstrip())
    worst, worst_end = max(relative, default=0.0), max(absolute, default=0.0)
    print(f"past 10% of the fetch, >= 10 s left: {within}/{len(relative)} ETAs within 20%, "
          f"worst {worst:.1%}; last 10 s: worst {worst_end:.1f} s off")  # fmt: skip


def cron_run(base_url: str, folder: Path) -> None:
    args = [
        "run",
        "--discover",
        "--json",
        "--duckdb",
        str(folder / "c.duckdb"),
        "--pipelines-dir",
        str(folder / "p"),
    ]
    started = time.monotonic()
    done = subprocess.run(
        [*CLI, *args], env=env_for(base_url), capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    elapsed = time.monotonic() - started
    lines = done.stderr.splitlines()
    summary = json.loads(done.stdout)
    returns, escapes = done.stderr.count("\r"), done.stderr.count("\x1b")
    print(f"exit code {done.returncode} in {elapsed:.1f} s; {len(lines)} progress line(s) on stderr "
          f"(carriage returns: {returns}, escape sequences: {escapes})")  # fmt: skip
    for line in lines:
        print("  " + line)
    print(f"--json parsed: tasks {summary['tasks']['total']}, pacing {summary['pacing']}")
    print(f"  | {done.stdout.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("terminal", "cron"))
    parser.add_argument("--tasks", type=int, default=TASKS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "terminal"):
            with simulator(args.tasks) as base_url:
                print(f"== terminal: {args.tasks} tasks, default pacing (50/s and 1000/min)")
                report_terminal(terminal_run(base_url, Path(tmp)))
        if args.only in (None, "cron"):
            with simulator(args.tasks) as base_url:
                print(f"== cron (no terminal): {args.tasks} tasks, default pacing")
                cron_run(base_url, Path(tmp))


if __name__ == "__main__":
    main()
