"""What a scheduled run meets with nobody watching: readers, signals, bad config, a growing folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

import duckdb
import pytest

from feishu_followers.options import PIPELINE_NAME
from feishu_simulator import World

from .conftest import DATASET, Loader, answered, cli, sim_env, truth, wait_until


def env_for(loader: Loader, **extra: str) -> dict[str, str]:
    return sim_env(loader.sim, SOURCES__FEISHU_TASKS__BACKOFF_BASE_SECONDS="0.01", **extra)


def run_args(loader: Loader, ids: list[str]) -> list[str]:
    args = ["run", "--duckdb", str(loader.duckdb), "--pipelines-dir", str(loader.pipelines_dir)]
    return args + [arg for task_id in ids for arg in ("--task-id", task_id)]


def assert_one_line(stderr: str, starts: str = "feishu-followers: ") -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(starts), stderr
    assert "Traceback" not in stderr
    return lines[0]


def start_cli(loader: Loader, args: list[str], tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    """``cli`` started in the background, with the same environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    full_env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    full_env.update(env_for(loader, **env))
    return subprocess.Popen(
        [sys.executable, "-m", "feishu_followers.cli", *args],
        cwd=tmp_path,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_requests(loader: Loader, count: int) -> None:
    wait_until(lambda: answered(loader.sim) >= count, "the run never started fetching")


class LiveCli:
    """A background CLI run whose output is read as it comes, so a test acts when a line appears
    (say, releases the file once the run says it waits) instead of after a guessed delay."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._closed: set[str] = set()
        self._changed = threading.Condition()
        # one reader per pipe: neither can fill up and stall the run while the test waits
        self._readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True) for name in self._lines
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            with self._changed:
                self._lines[name].append(line)
                self._changed.notify_all()
        with self._changed:
            self._closed.add(name)
            self._changed.notify_all()

    def wait_for_stderr(self, text: str, timeout: float = 120) -> None:
        """Until a line of stderr contains ``text``; fails if the run ends (or hangs) without it."""

        def said() -> bool:
            return any(text in line for line in self._lines["stderr"])

        with self._changed:
            self._changed.wait_for(lambda: said() or "stderr" in self._closed, timeout)
            assert said(), f"the run never said {text!r}; stderr: {''.join(self._lines['stderr'])}"

    def finish(self, timeout: float = 120) -> tuple[str, str]:
        """Wait for the exit (bounded: a broken run fails here); (stdout, stderr)."""
        self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        with self._changed:
            return "".join(self._lines["stdout"]), "".join(self._lines["stderr"])

    def __enter__(self) -> LiveCli:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc.poll() is None:  # a failed test leaves no run behind
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- a reader holds the file
def test_a_reader_is_waited_for_then_the_run_loads(loader: Loader, world: World, tmp_path: Path) -> None:
    ids = world.task_ids()
    loader.run(ids[:5])
    reader = duckdb.connect(str(loader.duckdb), read_only=True)  # an analyst's notebook
    args = [*run_args(loader, ids), "--quiet", "--lock-timeout", "60s"]
    with LiveCli(start_cli(loader, args, tmp_path)) as live:
        try:
            live.wait_for_stderr("waiting up to 60 s for the DuckDB file")
        finally:
            reader.close()  # the analyst closes the notebook once the run waits for it
        _, stderr = live.finish()
    assert live.proc.returncode == 0, stderr
    line = assert_one_line(stderr)
    assert "waiting up to 60 s for the DuckDB file" in line and f"held by PID {os.getpid()}" in line
    assert loader.followers() == truth(world, ids)


def test_a_reader_that_keeps_the_file_past_the_timeout_loses_nothing(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()
    loader.run(ids[:5])
    loader.sim.faults.latency_ms = 150  # ~50 requests, 2 at a time: a few seconds of fetching
    loader.sim.reset_stats()
    proc = start_cli(loader, [*run_args(loader, ids), "--concurrency", "2", "--lock-timeout", "2s"], tmp_path)
    wait_for_requests(loader, 5)  # past its start: now fetching, the file is not open
    reader = duckdb.connect(str(loader.duckdb), read_only=True)
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        reader.close()
    assert proc.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert "waiting up to 2 s for the DuckDB file" in lines[0]
    assert lines[-1].startswith("feishu-followers: error: ") and "still held after 2 s" in lines[-1]
    assert "the next run loads it first" in lines[-1] and "Traceback" not in stderr
    assert loader.followers() == truth(world, ids[:5])  # not loaded yet
    loader.sim.faults.latency_ms = 0
    world.add_follower(ids[6])  # changed since: the pending package is loaded first, then fetched anew
    result = loader.run(ids)  # the next scheduled run
    assert result.completed_pending
    assert loader.followers() == truth(world, ids)
    assert loader.query(f"select count(*) from {DATASET}.task_fetch_status") == [(len(ids),)]


# --------------------------------------------------------------------------- signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_within_seconds_and_keeps_what_was_fetched(
    loader: Loader, world: World, tmp_path: Path, signum: int
) -> None:
    ids = world.task_ids()
    loader.sim.faults.latency_ms = 300
    proc = start_cli(loader, [*run_args(loader, ids), "--concurrency", "2"], tmp_path)
    wait_for_requests(loader, 8)  # the simulator is fresh: these are this run's requests
    proc.send_signal(signum)
    at_signal = answered(loader.sim)
    stdout, stderr = proc.communicate(timeout=120)
    # Stopped at once, counted in requests rather than seconds (a busy machine stretches those):
    # after the signal the 2 requests in flight end, and no more than 2 a worker began before its
    # stop check (every 0.1 s; a request takes 0.3 s). A run that went on would make ~35 more.
    after_signal = answered(loader.sim) - at_signal
    assert after_signal <= 2 + 2 * 2, f"{after_signal} requests after the signal: the run went on fetching"
    assert proc.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    line = assert_one_line(stderr, f"feishu-followers: stopped by {name}: ")
    fetched = loader.statuses()
    assert 0 < len(fetched) < len(ids)
    assert f"{len(fetched)} tasks fetched and loaded" in line
    assert "stopped early" in stdout
    assert loader.followers() == truth(world, list(fetched))
    loader.sim.faults.latency_ms = 0
    loader.run(ids)
    assert loader.followers() == truth(world, ids)


def test_a_second_signal_aborts_at_once(loader: Loader, world: World, tmp_path: Path) -> None:
    ids = world.task_ids()
    loader.run(ids[:10])
    before = loader.followers()
    loader.sim.faults.latency_ms = 300
    proc = start_cli(loader, [*run_args(loader, ids), "--concurrency", "2"], tmp_path)
    loader.sim.reset_stats()
    wait_for_requests(loader, 3)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode in (143, 0), stderr  # 0 only if the first stop had already finished
    assert "Traceback" not in stderr
    assert all(task_id in loader.followers() or not world.followers(task_id) for task_id in before)
    loader.sim.faults.latency_ms = 0
    loader.run(ids)
    assert loader.followers() == truth(world, ids)


def test_a_signal_while_waiting_for_the_file_ends_the_wait(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()[:3]
    loader.run(ids)
    reader = duckdb.connect(str(loader.duckdb), read_only=True)
    try:
        with LiveCli(start_cli(loader, [*run_args(loader, ids), "--lock-timeout", "10m"], tmp_path)) as live:
            live.wait_for_stderr("waiting up to 600 s for the DuckDB file")
            live.proc.send_signal(signal.SIGTERM)
            # Ended by the signal: the wait would last 600 s, and the reader lets go only after the
            # exit. How soon a stop ends the wait (the next poll) is test_runner_units' fake-clock test.
            _, stderr = live.finish()
    finally:
        reader.close()
    assert live.proc.returncode == 143, stderr
    waiting, stopped = stderr.strip().splitlines()
    assert waiting.startswith("feishu-followers: waiting up to 600 s for the DuckDB file")
    assert stopped.startswith("feishu-followers: stopped by SIGTERM: ") and "a stop was requested" in stopped


# --------------------------------------------------------------------------- dlt's working folder
def test_the_working_folder_stays_bounded(loader: Loader, world: World) -> None:
    ids = world.task_ids()[:6]

    def folder_size() -> int:
        return sum(p.stat().st_size for p in loader.pipelines_dir.rglob("*") if p.is_file())

    sizes = []
    for _ in range(6):
        loader.run(ids)
        sizes.append(folder_size())
    loaded = loader.pipelines_dir / PIPELINE_NAME / "load" / "loaded"
    assert len(list(loaded.iterdir())) == 1
    assert sizes[-1] <= sizes[1] * 1.1, sizes


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SOURCES__FEISHU_TASKS__DISCOVER_LOOKBACK_SECONDS": "1d"}, "discover_lookback_seconds: '1d'"),
        ({"SOURCES__FEISHU_TASKS__CONCURRENCY": "many"}, "concurrency: 'many'"),
        (
            {"SOURCES__FEISHU_TASKS__MAX_REQUESTS": "abc"},
            "SOURCES__FEISHU_TASKS__MAX_REQUESTS): cannot use 'abc'",
        ),
        ({"SOURCES__FEISHU_TASKS__STALE_AFTER": "soon"}, "SOURCES__FEISHU_TASKS__STALE_AFTER): cannot use"),
        ({"SOURCES__FEISHU_TASKS__DISCOVER": "maybe"}, "expected true or false"),
        ({"SOURCES__FEISHU_TASKS__LOCK_TIMEOUT": "-"}, "SOURCES__FEISHU_TASKS__LOCK_TIMEOUT"),
        ({"SOURCES__FEISHU_TASKS__USER_ID_TYPE": "email"}, "user_id_type must be one of"),
        (
            {"SOURCES__FEISHU_TASKS__CONCURRENCY": "0"},
            "concurrency (SOURCES__FEISHU_TASKS__CONCURRENCY): cannot use 0",
        ),
        ({"SOURCES__FEISHU_TASKS__MAX_RPM": "-5"}, "max_rpm (SOURCES__FEISHU_TASKS__MAX_RPM): cannot use -5"),
        (
            {"SOURCES__FEISHU_TASKS__TIMEOUT_SECONDS": "inf"},
            "timeout_seconds (SOURCES__FEISHU_TASKS__TIMEOUT",
        ),
        ({"SOURCES__FEISHU_TASKS__STALE_AFTER": "99999999999d"}, "cannot use '99999999999d'"),
    ],
)
def test_a_bad_config_value_is_one_line_naming_the_key(
    loader: Loader, world: World, tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    done = cli(run_args(loader, world.task_ids()[:2]), tmp_path, env_for(loader, **env))
    assert done.returncode == 1, done.stderr
    assert expected in assert_one_line(done.stderr, "feishu-followers: error: ")


def test_a_folder_as_the_duckdb_file_is_one_line(loader: Loader, world: World, tmp_path: Path) -> None:
    done = cli(
        [*run_args(loader, world.task_ids()[:2]), "--duckdb", str(tmp_path)], tmp_path, env_for(loader)
    )
    assert done.returncode == 1, done.stderr
    assert f"--duckdb {tmp_path} is a folder" in assert_one_line(done.stderr, "feishu-followers: error: ")


def test_a_broken_config_file_is_one_line(loader: Loader, world: World, tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[sources.feishu_tasks]\nmax_rps = "fast\n')
    done = cli(run_args(loader, world.task_ids()[:2]), tmp_path, env_for(loader))
    assert done.returncode == 1, done.stderr
    assert "config.toml" in assert_one_line(done.stderr, "feishu-followers: error: ")


def test_the_summary_counts_what_the_tables_hold(loader: Loader, world: World, tmp_path: Path) -> None:
    """Long garbage lines that share their first 200 characters are one stored id, and one count."""
    garbage = ["x" * 200 + f"-{n}" for n in range(5)] + ["y" * 300, "y" * 300 + "z"]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join([*world.task_ids()[:3], *garbage]) + "\n")
    done = cli([*run_args(loader, []), "--task-ids-file", str(ids_file)], tmp_path, env_for(loader))
    assert done.returncode == 0, done.stderr
    statuses = loader.statuses()
    invalid = sum(1 for status in statuses.values() if status == "invalid_task")
    assert invalid == 2
    assert f"tasks: {len(statuses)} (ok 3, invalid_task {invalid}," in done.stdout


@pytest.mark.parametrize("damaged", ["state.json", "schemas/feishu_tasks.schema.json"])
def test_a_damaged_dlt_working_folder_is_one_line_and_moving_it_away_recovers(
    loader: Loader, world: World, tmp_path: Path, damaged: str
) -> None:
    ids = world.task_ids()
    loader.run(ids)
    folder = loader.pipelines_dir / PIPELINE_NAME
    (folder / damaged).write_text("{")  # a crash mid-write, a full disk, a careless edit
    done = cli(run_args(loader, ids), tmp_path, env_for(loader))
    assert done.returncode == 1, done.stderr
    line = assert_one_line(done.stderr, "feishu-followers: error: ")
    assert f"dlt's working folder {folder} is damaged" in line and "move it away" in line
    folder.rename(tmp_path / "moved-away")
    world.add_follower(ids[0])
    done = cli(run_args(loader, ids), tmp_path, env_for(loader))
    assert done.returncode == 0, done.stderr
    assert loader.followers() == truth(world, ids)
    history = loader.query(f"select count(*) from {DATASET}.task_follower_history where valid_to is null")
    assert history == [(sum(len(f) for f in truth(world, ids).values()),)]
