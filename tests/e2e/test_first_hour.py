"""A new user's first hour: a run that cannot start says so in one line and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from feishu_simulator import Simulator, World

from .conftest import APP_ID, APP_SECRET, cli

# Makes the named top-level modules fail to import, as in an environment without them.
BLOCK_IMPORTS = """\
import os, sys

class _Missing:
    blocked = set(os.environ.get("BLOCKED_MODULES", "").split(","))

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Missing())
"""


def credentials(sim: Simulator, base_url: str | None = None) -> dict[str, str]:
    return {
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
        "SOURCES__FEISHU_TASKS__BASE_URL": base_url or sim.base_url,
    }


@pytest.mark.parametrize(
    "case", ["no_credentials", "base_url_without_scheme", "no_tasks", "postgres_driver", "bigquery_driver"]
)
def test_a_run_that_cannot_start_creates_nothing(
    sim: Simulator, world: World, tmp_path: Path, case: str
) -> None:
    """Run from an empty folder with the defaults (./feishu_followers.duckdb, dlt's own folder)."""
    here, dlt_data = tmp_path / "here", tmp_path / "dlt_data"
    here.mkdir()
    env = {**credentials(sim), "DLT_DATA_DIR": str(dlt_data)}
    args = ["run", "--all-tasklists"]
    expected = {
        "no_credentials": "missing configuration: set SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID and ",
        "base_url_without_scheme": f"cannot use '{sim.base_url.removeprefix('http://')}'; expected an http://",
        "no_tasks": "no task ids given",
        "postgres_driver": "no module named 'psycopg2'): pip install \"feishu-task-followers[postgres]\"",
        "bigquery_driver": "the bigquery destination needs packages that are not installed",
    }[case]
    if case == "no_credentials":
        env = {"SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url, "DLT_DATA_DIR": str(dlt_data)}
    elif case == "base_url_without_scheme":  # as copied from the simulator's banner, or a note
        env.update(credentials(sim, sim.base_url.removeprefix("http://")))
    elif case == "no_tasks":
        args = ["run"]
    else:  # the destination's driver is not installed
        shim = tmp_path / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(BLOCK_IMPORTS)
        kind = case.removesuffix("_driver")
        blocked = {"postgres": "psycopg2", "bigquery": "google"}[kind]
        env.update(PYTHONPATH=str(shim), BLOCKED_MODULES=blocked)
        env[f"DESTINATION__{kind.upper()}__CREDENTIALS"] = "postgresql://u:p@127.0.0.1:1/db"
        args += ["--destination", kind]
        if kind == "bigquery":
            expected += " (no module named 'google'): pip install \"dlt[bigquery]\""
    done = cli(args, here, env)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("feishu-followers: error: "), done.stderr
    assert expected in lines[0]
    assert "(a bug" not in lines[0]
    assert list(here.iterdir()) == []  # no DuckDB file, no lock sidecar
    assert not dlt_data.exists()  # no pipelines folder, no lock in it
    assert sim.stats.as_dict()["business_requests"] == 0
    assert sim.tokens.issued_tokens() == []  # not even the token: nothing retried a bad URL


def test_the_shorter_credential_keys_still_work(sim: Simulator, world: World, tmp_path: Path) -> None:
    """``SOURCES__FEISHU_TASKS__APP_ID`` / ``…__APP_SECRET``, documented before the credentials spec."""
    env = {
        "SOURCES__FEISHU_TASKS__APP_ID": APP_ID,
        "SOURCES__FEISHU_TASKS__APP_SECRET": APP_SECRET,
        "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
    }
    args = ["run", "--duckdb", str(tmp_path / "f.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    done = cli([*args, "--task-id", world.task_ids()[0], "--quiet"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "loaded 1 task(s) (ok 1," in done.stdout
