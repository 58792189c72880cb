"""``feishu-followers listen`` as a real process, and what the tests read back: its lines, the journal.

Every wait is on a condition (a line on stderr, a journal count, a delivery state) with a bound,
never on a clock.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from feishu_simulator import Simulator

VERIFICATION_TOKEN = "vt-listen-test-7f3a"
ENCRYPT_KEY = "ek-listen-test-91bc"
READY = re.compile(r"receiving Feishu events on (http://\S+/feishu/events)")
LONG_READY = "receiving Feishu events by long connection"
START_SECONDS = 60.0  # the settings child imports dlt: seconds on a busy machine


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it is truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def listen_env(
    token: str | None = VERIFICATION_TOKEN, encrypt_key: str | None = ENCRYPT_KEY, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    if token is not None:
        env["SOURCES__FEISHU_TASKS__CREDENTIALS__VERIFICATION_TOKEN"] = token
    if encrypt_key is not None:
        env["SOURCES__FEISHU_TASKS__CREDENTIALS__ENCRYPT_KEY"] = encrypt_key
    env.update(extra)
    return env


class Listener:
    """One ``listen`` (or ``follow``) process; its stderr collected line by line."""

    def __init__(
        self,
        journal: Path,
        cwd: Path,
        env: dict[str, str],
        args: list[str] | None = None,
        subcommand: str = "listen",
    ) -> None:
        self.journal = journal
        command = [sys.executable, "-m", "feishu_followers.cli", subcommand, "--journal", str(journal)]
        self.process = subprocess.Popen(
            [*command, *(args if args is not None else ["--port", "0"])],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stdout = ""
        atexit.register(self._end_if_left_running)  # a failed test's receiver ends with the session
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def ready(self) -> str:
        """The request URL, once the process says it listens."""

        def url() -> str | None:
            for line in self.lines:
                match = READY.search(line)
                if match:
                    return match.group(1)
            if self.process.poll() is not None:
                raise AssertionError(f"listen exited {self.process.returncode}: {self.stderr}")
            return None

        return str(wait_for(url, "listen to start", START_SECONDS))

    def ready_long_connection(self) -> None:
        wait_for(lambda: any(LONG_READY in line for line in self.lines), "listen to start", START_SECONDS)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        assert self.process.stdout is not None
        self.stdout = self.process.stdout.read()
        return code

    def exit_code(self, timeout: float = START_SECONDS) -> int:
        """Wait for the process to end by itself (a refusal to start)."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def _end_if_left_running(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers or {"Content-Type": "application/json"}, timeout=30)


def journal_rows(journal: Path) -> list[tuple[str, str, str, str, int, int]]:
    """(event_id, api, task_id, event_types, event_time_ms, deleted) of every recorded change."""
    if not journal.exists():
        return []
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        columns = "event_id, api, task_id, event_types, event_time_ms, deleted"
        return db.execute(f"select {columns} from changes order by position").fetchall()


def journal_counters(journal: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return dict(db.execute("select name, value from counters").fetchall())


def settled(sim: Simulator) -> bool:
    """Every event the simulator made is acknowledged or given up, and no push is due or under way."""
    snapshot = sim.events.outbox.snapshot()
    return snapshot["pending"] == 0 and snapshot["in_flight"] == 0 and snapshot["queued"] == 0


def deliveries(sim: Simulator) -> list[dict[str, Any]]:
    return json.loads(json.dumps(sim.events.outbox.snapshot(with_deliveries=True)["deliveries"]))
