"""What a person (a terminal) and a scheduler (pipes) see of a real run against the simulator.

The terminal runs are under a pseudo-terminal; a small screen model replays what was written
(rich's live display uses only carriage returns, erase-line, cursor-up and colours) so the test
reads the final screen as the person would, and fails on any control sequence it does not know.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from feishu_followers.eta import PACED_SLACK, seconds_to_send
from feishu_followers.run import run
from feishu_simulator import Faults, Simulator, World
from feishu_tasks.control import RunControl
from feishu_tasks.ratelimit import PacingLimiter

from .conftest import APP_ID, APP_SECRET, Loader, cli, sim_env

TASKS = 200
TOTAL = TASKS + 1  # and one malformed id
# Our CLI with psutil missing, as on a plain install: dlt's collector used to warn about it.
WITHOUT_PSUTIL = [
    sys.executable,
    "-c",
    "import sys; sys.modules['psutil'] = None; from feishu_followers.cli import main; "
    "sys.exit(main(sys.argv[1:]))",
]
PROGRESS_LINE = re.compile(
    r"feishu-followers: fetch \d+s: tasks \d+/\d+\+? \(\d+%\), requests \d+ at \d+\.\d/s "
    r"\(paced at 50/s and 1000/min(; waiting \d+s for the per-minute quota)?\), retries \d+ \(429s \d+\), "
    r"failed \d+, invalid \d+, forbidden \d+, ETA (>=)?(\d+s|\d+m\d\ds|unknown)"
)
# Once the fetch has ended, a line names the step under way (on a slow machine one can land there).
STEP_LINE = re.compile(r"feishu-followers: [a-z ]+ \d+s \(fetch done: \d+ tasks in \d+s\)")
PACED_LINE = "  paced at 50 req/s: Feishu's 50/s quota; see --max-rps"


def summary_says_paced(requests: int, fetch_seconds: float, shown_within: float) -> bool | None:
    """Must the summary say that the 50/s pacing held the run? None: the figures fit either answer.

    It says so when the fetch kept that pace (within PACED_SLACK of the fastest the pacing allows).
    With every core busy the run itself is slower than 50/s, and then it rightly says nothing: the
    test checks the answer this run's figures call for, not the one a fast machine gives.
    ``shown_within``: how far the ``fetch_seconds`` shown may be from the measured one.
    """
    limit = seconds_to_send(requests, 0.0, (), PacingLimiter(50, 1000).rules) * PACED_SLACK
    if fetch_seconds + shown_within <= limit:
        return True
    if fetch_seconds - shown_within > limit:
        return False
    return None


@pytest.fixture
def world() -> World:
    return World.generate(tasks=TASKS, seed=7)


@pytest.fixture
def sim(world: World) -> Iterator[Simulator]:
    with Simulator(world, faults=Faults(), app_id=APP_ID, app_secret=APP_SECRET) as server:
        yield server


def env_for(sim: Simulator, secret: str = APP_SECRET) -> dict[str, str]:
    return sim_env(sim, secret, RUNTIME__DLTHUB_TELEMETRY="false")


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--discover",
        "--duckdb",
        str(tmp_path / "f.duckdb"),
        "--pipelines-dir",
        str(tmp_path / "p"),
        *extra,
    ]


# ------------------------------------------------------------------------------- a terminal
def in_pty(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    columns: int = 120,
    on_text: tuple[str, Callable[[], None]] | None = None,
) -> tuple[int, str]:
    """Run ``command`` with a pseudo-terminal as stdin, stdout and stderr; all it wrote.

    ``on_text`` = (text, action): ``action()`` once the screen shows ``text`` (colours aside).
    """
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    full_env.update(env, TERM="xterm-256color", COLUMNS=str(columns), LINES="40")
    full_env.pop("NO_COLOR", None)
    proc = subprocess.Popen(command, stdin=child, stdout=child, stderr=child, env=full_env, cwd=cwd)
    os.close(child)
    written, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([parent], [], [], 0.5)[0]:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            written += chunk
            if on_text and on_text[0] in COLOURS.sub("", written.decode(errors="replace")):
                on_text[1]()
                on_text = None
        elif proc.poll() is not None:
            break
    os.close(parent)
    return proc.wait(timeout=30), written.decode()


COLOURS = re.compile(r"\x1b\[[0-9;]*m")
CONTROL = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\r|\n|[^\x1b\r\n]+")


def screen_of(written: str) -> tuple[list[str], int]:
    """The lines on screen (scrollback included) after ``written``, and how many redraws moved up."""
    lines, row, column, ups = [""], 0, 0, 0
    for match in CONTROL.finditer(written):
        text, (args, command) = match.group(0), match.groups()
        if text == "\n":
            row, column = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif text == "\r":
            column = 0
        elif command == "m" or args in ("?25", "?25l", "?25h") or text in ("\x1b[?25l", "\x1b[?25h"):
            pass  # colours, cursor shown or hidden
        elif command == "K" and args == "2":
            lines[row], column = "", 0
        elif command == "A":
            row, ups = max(0, row - int(args or 1)), ups + 1
        elif command:
            raise AssertionError(f"unexpected control sequence {text!r}")
        else:
            lines[row] = lines[row][:column].ljust(column) + text + lines[row][column + len(text) :]
            column += len(text)
    return [line.rstrip() for line in lines if line.strip()], ups


def test_terminal_shows_one_live_display_then_the_steps_and_no_noise(
    sim: Simulator, world: World, tmp_path: Path
) -> None:
    duckdb.connect(str(tmp_path / "f.duckdb")).close()
    reader = duckdb.connect(str(tmp_path / "f.duckdb"), read_only=True)  # the run waits for it
    args = run_args(tmp_path, "--max-rps", "50", "--task-id", "not-a-task")
    try:  # the reader lets go once the run says it waits
        code, written = in_pty(
            [*WITHOUT_PSUTIL, *args], env_for(sim), tmp_path, on_text=("for the DuckDB file", reader.close)
        )
    finally:
        reader.close()
    assert code == 0, written
    screen, ups = screen_of(written)
    assert ups > 10, written  # redrawn in place, many times
    plain = COLOURS.sub("", written)  # colours off
    assert re.search(rf"fetching followers .* \d+/{TOTAL} tasks \d+% ETA \d+s", plain)
    assert not any("warn" in line.lower() or "psutil" in line for line in screen), screen
    assert not any(re.search(r"Resources: \d|Memory usage", line) for line in screen)  # no dlt log
    assert "fetching followers" not in "\n".join(screen)  # the live block is gone at the end
    # the runner's notice stays, the listing and the fetch are told once each, then the steps
    assert screen[0].startswith("feishu-followers: waiting up to 300 s for the DuckDB file (opening it)")
    assert re.fullmatch(rf"✓ listing done in \d+s: 2 pages, {TOTAL} tasks to fetch", screen[1])
    fetched = re.fullmatch(
        rf"✓ fetched {TOTAL} tasks in (\d+)s: (\d+) requests \(retries 0\), "
        "failed 0 · invalid 1 · forbidden 0",
        screen[2],
    )
    assert fetched, screen
    assert [line.rsplit(" ", 2)[0] for line in screen[3:6]] == [
        "✓ normalize",
        "✓ load",
        "✓ history and views",
    ]
    assert screen[6].startswith("feishu-followers: this run loaded into ")
    assert f"  tasks: {TOTAL} (ok {TASKS}, invalid_task 1, no_permission 0, failed 0)" in screen
    assert screen[-1] == (
        "  next: 1 task(s) not ok; see select * from feishu_tasks.task_fetch_status where status <> 'ok'"
    )
    said_paced = screen[-2] == PACED_LINE
    assert said_paced or screen[-2].startswith("  dlt steps: "), screen
    paced = summary_says_paced(int(fetched[2]), int(fetched[1]), shown_within=0.5)  # whole seconds shown
    assert paced is None or said_paced == paced, screen
    assert len(screen) < 20, screen  # it never scrolled


def test_terminal_error_line_is_the_last_thing_on_screen(sim: Simulator, tmp_path: Path) -> None:
    code, written = in_pty(
        [sys.executable, "-m", "feishu_followers.cli", *run_args(tmp_path)],
        env_for(sim, "wrong-secret"),
        tmp_path,
    )
    assert code == 1, written
    screen, _ = screen_of(written)
    assert screen[-1].startswith("feishu-followers: error: ") and APP_ID in screen[-1], screen
    assert len(screen) == 2 and screen[0].startswith("✗ fetch stopped at 0/0 tasks in "), screen


# ---------------------------------------------------------------------------------- pipes
def test_logs_get_plain_lines_at_the_configured_interval_and_json(sim: Simulator, tmp_path: Path) -> None:
    env = {**env_for(sim), "SOURCES__FEISHU_TASKS__PROGRESS_INTERVAL": "1s"}
    done = cli([*run_args(tmp_path, "--max-rps", "50", "--json", "--task-id", "not-a-task")], tmp_path, env)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) >= 2, done.stderr  # a 4-second fetch, a line a second
    assert PROGRESS_LINE.fullmatch(lines[0]), lines
    assert all(PROGRESS_LINE.fullmatch(line) or STEP_LINE.fullmatch(line) for line in lines), lines
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["tasks"] == {
        "total": TOTAL,
        "ok": TASKS,
        "invalid_task": 1,
        "no_permission": 0,
        "failed": 0,
    }
    assert summary["requests"] >= TASKS and len(summary["load_ids"]) == 1
    paced = {"max_rps": 50.0, "max_rpm": 1000.0, "paced_by": "max_rps", "paced_rps": 50.0}
    not_paced = {**paced, "paced_by": None, "paced_rps": None}
    expected = summary_says_paced(summary["requests"], summary["fetch_seconds"], shown_within=0.0005)
    assert summary["pacing"] in {True: [paced], False: [not_paced], None: [paced, not_paced]}[expected]
    assert summary["stopped_by"] is None and summary["elapsed_seconds"] > summary["fetch_seconds"] > 3


def test_quiet_prints_the_one_line_outcome(sim: Simulator, world: World, tmp_path: Path) -> None:
    good = world.task_ids()[:5]
    args = ["run", "--duckdb", str(tmp_path / "f.duckdb"), "--pipelines-dir", str(tmp_path / "p"), "--quiet"]
    done = cli([*args, *(f"--task-id={task}" for task in good)], tmp_path, env_for(sim))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    followers = sum(len(world.followers(task)) for task in good)
    assert re.fullmatch(
        rf"feishu-followers: loaded 5 task\(s\) \(ok 5, invalid_task 0, no_permission 0, failed 0\), "
        rf"{followers} followers, into {re.escape(str(tmp_path / 'f.duckdb'))} in [0-9.]+ s\n",
        done.stdout,
    ), done.stdout
    done = cli([*args, "--task-id", "not-a-task"], tmp_path, env_for(sim))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and len(done.stdout.splitlines()) == 1
    assert done.stdout.startswith("feishu-followers: loaded 1 task(s) (ok 0, invalid_task 1, ")
    assert done.stdout.endswith(
        "; next: 1 task(s) not ok; see select * from feishu_tasks.task_fetch_status where status <> 'ok'\n"
    )


def test_verbose_shows_dlt_log_without_the_psutil_warning(sim: Simulator, tmp_path: Path) -> None:
    done = cli(run_args(tmp_path, "--verbose"), tmp_path, env_for(sim), command=WITHOUT_PSUTIL)
    assert done.returncode == 0, done.stderr
    assert "Resources: " in done.stderr  # dlt's own progress log, asked for
    assert "psutil" not in done.stderr and "Warning" not in done.stderr


# ----------------------------------------------------------------------- the total, early
def test_the_listing_runs_ahead_so_the_total_is_known_early(tmp_path: Path) -> None:
    world = World.generate(tasks=600, seed=3)
    with Simulator(world, faults=Faults(), app_id=APP_ID, app_secret=APP_SECRET) as server:
        loader = Loader(server, tmp_path)
        control = RunControl()
        seen: list[tuple[int, int]] = []  # (tasks done, total) when the listing was first seen done

        def watch() -> None:
            while not control.report.stats.listing_done:
                time.sleep(0.01)
            seen.append((control.report.stats.tasks_done, control.report.stats.tasks_queued))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        run(loader.options([], discover=True, max_rps=100), control)
        watcher.join(timeout=5)
    done, total = seen[0]
    assert total == 600
    # held back by the workers' queue (160 ids), the listing would end near 440 done
    assert done < 300, seen
