"""A real PostgreSQL server for the test session: started once on a free loopback port, stopped
at the end, one fresh database per test.

initdb refuses to run as root (tests run as root here and in CI), so as root the server runs as
the unprivileged ``nobody`` in a data directory that it owns; otherwise as the current user. It
listens on 127.0.0.1 only, with no unix socket (the directory it would use may not be its own),
trusting loopback connections, and skips fsync: the data lives as long as the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import psycopg2
import pytest

# Where a server binary may be: $PG_BIN, Debian's versioned folders (newest first), then PATH.
_SEARCH = "/usr/lib/postgresql/*/bin"
HOW_TO_GET_ONE = (
    "no PostgreSQL server binaries (initdb, pg_ctl) found: install them (Debian/Ubuntu: "
    "apt-get install postgresql) or set PG_BIN to their folder"
)
PASSWORD = "unused"  # trust auth ignores it; dlt's credentials require one


def find_server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(glob.glob(_SEARCH), key=lambda p: _version(Path(p).parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    candidates.append(str(Path(on_path).parent) if on_path else "")
    for folder in filter(None, candidates):
        if all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; ``new_database`` gives each test its own database."""

    bindir: Path
    root: Path  # owned by the server's user: data directory and log
    port: int
    user: str | None  # the unprivileged user the server runs as, when we are root
    _names = count(1)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            args,
            user=self.user,
            cwd=self.root,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def init(self) -> None:
        initdb = self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if initdb.returncode:
            raise RuntimeError(f"initdb failed: {initdb.stderr.strip()}")

    def start(self) -> None:
        settings = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        started = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", settings, "-w", "-t", "60", "start",
        )  # fmt: skip
        if started.returncode:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}\n{log}")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def new_database(self) -> str:
        """A fresh, empty database; returns its dlt credentials URL."""
        name = f"test_{next(self._names)}"
        self._admin(f'create database "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self._admin(f'drop database if exists "{url.rsplit("/", 1)[-1]}" with (force)')

    def _admin(self, statement: str) -> None:
        """One statement outside a transaction (create / drop database refuse to run in one)."""
        con = psycopg2.connect(self.url())
        try:
            con.autocommit = True
            with con.cursor() as cursor:
                cursor.execute(statement)
        finally:
            con.close()


def _unprivileged_user() -> str | None:
    """``nobody`` when we are root (initdb refuses root), else None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("nobody").pw_name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's server (skips the test when there is no server binary)."""
    bindir = find_server_bin()
    if bindir is None:
        pytest.skip(HOW_TO_GET_ONE)
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="feishu-pg-"))  # under /tmp, reachable by `nobody`
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bindir, root, _free_port(), user)
    try:
        server.init()
        for attempt in range(3):  # the free port may be taken between the probe and the bind
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                server.port = _free_port()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards."""
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)
