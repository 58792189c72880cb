"""Shared fixtures: a simulated tenant on loopback and a loader that runs the real pipeline
into DuckDB or, for the tests marked ``on_every_destination``, also into a real Postgres server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.sql_client import SqlClientBase

from feishu_followers.options import RunOptions
from feishu_followers.run import RunResult, run
from feishu_simulator import Faults, Simulator, World
from feishu_tasks import tables

REPO = Path(__file__).resolve().parents[2]
APP_ID = "cli_test_app"
APP_SECRET = "test-secret-9f2c41d7e0"
USER_TOKEN = "u-test-user-token-5be1"
DATASET = "feishu_tasks"
# The tables the source loads, one resource each (from the registry).
SOURCE_TABLES = tuple(table.name for table in tables.SOURCE_TABLES)
PG_CREDENTIALS_ENV = "DESTINATION__POSTGRES__CREDENTIALS"

# The same test on DuckDB and on the session's Postgres server (skipped without its binaries).
DESTINATIONS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
on_every_destination = pytest.mark.parametrize("destination", DESTINATIONS, indirect=True)


@pytest.fixture
def world() -> World:
    return World.generate(tasks=40, seed=11)


@pytest.fixture
def sim(world: World):
    with Simulator(
        world, faults=Faults(), app_id=APP_ID, app_secret=APP_SECRET, user_tokens={USER_TOKEN}
    ) as s:
        yield s


@pytest.fixture
def destination(request: pytest.FixtureRequest) -> str:
    """``duckdb`` unless a test asks for more with ``on_every_destination``."""
    return str(getattr(request, "param", "duckdb"))


class Loader:
    """Runs the pipeline in-process against the simulator and reads back the loaded tables,
    from DuckDB or Postgres, through dlt's SQL client."""

    def __init__(self, sim: Simulator, tmp_path: Path, destination: str = "duckdb", pg_url: str = "") -> None:
        self.sim = sim
        self.destination = destination
        self.pg_url = pg_url  # credentials of this test's own Postgres database
        self.duckdb = tmp_path / "followers.duckdb"
        self.pipelines_dir = tmp_path / "pipelines"

    def options(
        self,
        task_ids: list[str] | tuple[str, ...] = (),
        discover: bool = False,
        app_secret: str = APP_SECRET,
        user_access_token: str | None = None,
        tasklists: list[str] | None = None,
        all_tasklists: bool = False,
        tasklist_completed: bool | None = None,
        **source_args: Any,
    ) -> RunOptions:
        """Run options for the simulator's app (or, with ``user_access_token``, a user)."""
        credentials = (
            {"user_access_token": user_access_token}
            if user_access_token
            else {"app_id": APP_ID, "app_secret": app_secret}
        )
        args = {"base_url": self.sim.base_url, "credentials": credentials, "backoff_base_seconds": 0.01}
        args.update(source_args)
        return RunOptions(
            task_ids=list(task_ids),
            discover=discover,
            tasklists=list(tasklists or ()),
            all_tasklists=all_tasklists,
            tasklist_completed=tasklist_completed,
            destination=self.destination,
            duckdb_path=str(self.duckdb),
            pipelines_dir=str(self.pipelines_dir),
            quiet=True,
            source_args=args,
        )

    def run(
        self, task_ids: list[str] | tuple[str, ...] = (), discover: bool = False, **source_args: Any
    ) -> RunResult:
        return run(self.options(task_ids, discover, **source_args))

    def sql_client(self) -> SqlClientBase[Any]:
        """A client of the destination's dataset (one connection per ``with``)."""
        if self.destination == "duckdb":
            target: Any = dlt.destinations.duckdb(DuckDbCredentials(str(self.duckdb)))
        else:
            target = dlt.destinations.postgres(self.pg_url)
        return dlt.dataset(target, DATASET, schema=dlt.Schema(DATASET)).sql_client

    def query(self, sql: str, *args: Any) -> list[tuple]:
        with self.sql_client() as client:
            return [tuple(row) for row in client.execute_sql(sql, *args) or ()]

    def execute(self, sql: str, *args: Any) -> None:
        with self.sql_client() as client:
            client.execute_sql(sql, *args)

    def cli_args(self) -> list[str]:
        """The ``run`` flags that select this destination (its credentials: ``cli_env``)."""
        if self.destination == "duckdb":
            return ["--duckdb", str(self.duckdb), "--pipelines-dir", str(self.pipelines_dir)]
        return ["--destination", self.destination, "--pipelines-dir", str(self.pipelines_dir)]

    def cli_env(self) -> dict[str, str]:
        return {PG_CREDENTIALS_ENV: self.pg_url} if self.destination == "postgres" else {}

    def followers(self) -> dict[str, set[str]]:
        current: dict[str, set[str]] = defaultdict(set)
        for task_id, follower_id in self.query(f"select task_id, follower_id from {DATASET}.task_followers"):
            current[task_id].add(follower_id)
        return dict(current)

    def statuses(self) -> dict[str, str]:
        return dict(self.query(f"select task_id, status from {DATASET}.task_fetch_status"))


@pytest.fixture
def loader(
    sim: Simulator,
    tmp_path: Path,
    destination: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Loader]:
    if destination != "postgres":
        yield Loader(sim, tmp_path)
        return
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv(PG_CREDENTIALS_ENV, url)  # as a user configures dlt
    yield Loader(sim, tmp_path, destination, url)
    assert not (tmp_path / "followers.duckdb").exists(), "a Postgres test wrote a DuckDB file"


def sim_env(sim: Simulator, secret: str = APP_SECRET, **extra: str) -> dict[str, str]:
    """The env vars a CLI run against the simulator needs: the app's credentials and the base URL."""
    return {
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": secret,
        "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
        **extra,
    }


def truth(world: World, task_ids: list[str], user_id_type: str = "open_id") -> dict[str, set[str]]:
    """What task_followers must hold for these tasks (tasks without followers have no rows)."""
    expected = {task_id: set(world.followers(task_id, user_id_type)) for task_id in task_ids}
    return {task_id: ids for task_id, ids in expected.items() if ids}


def cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    command: list[str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``feishu-followers`` (or ``command``) as a user would, in a fresh process."""
    # a developer's own dlt config (credentials, destinations) stays out of the tests
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    full_env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    full_env.update(env or {})
    return subprocess.run(
        [*(command or [sys.executable, "-m", "feishu_followers.cli"]), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(condition: Callable[[], bool], failure: str, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds: tests wait on the event they mean, never on a delay.

    ``timeout`` is far beyond any working run, even on a machine with every core busy; past
    it the run is broken and the test fails with ``failure``.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.02)


def answered(sim: Simulator, endpoint: str = "followers") -> int:
    """How many requests to ``endpoint`` the simulator has answered so far."""
    return int(sim.stats.as_dict()["by_endpoint"].get(endpoint, 0))
