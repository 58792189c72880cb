"""``feishu-followers demo --store-app``: the simulator serves a store app's tenants, the demo's
receiver records the pushed app_ticket and installs, ``run --all-tenants`` loads each tenant into
the demo's DuckDB file with its own ``tenant_key``, and the demo prints each tenant's figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import httpx

from feishu_followers.demo import demo_world
from feishu_followers.demo_store import tenant_keys
from feishu_simulator import World
from feishu_tasks.journal import Journal

from .conftest import DATASET, cli, truth
from .listen_harness import Listener, listen_env, wait_for

TASKS, SEED, TENANTS = 60, 42, 3
DLT_AND_SHARED = {"_dlt_loads", "_dlt_version", "_dlt_pipeline_state", "_feishu_views"}


def test_the_demo_runs_as_a_store_app_and_loads_every_tenant_with_its_key(tmp_path: Path) -> None:
    database, pipelines = tmp_path / "demo.duckdb", tmp_path / "p"
    args = ["demo", "--store-app", "--tenants", str(TENANTS), "--tasks", str(TASKS), "--seed", str(SEED)]
    done = cli([*args, "--duckdb", str(database), "--pipelines-dir", str(pipelines)], tmp_path)
    assert done.returncode == 0, done.stderr
    keys = tenant_keys(TENANTS)
    assert f"{TENANTS} of {TENANTS} tenant(s) loaded" in done.stdout
    figures = done.stdout.split("Per tenant, all that", 1)[1].splitlines()[2 : 2 + TENANTS]
    assert [line.split()[0] for line in figures] == keys  # one line of figures per tenant
    with duckdb.connect(str(database), read_only=True) as con:
        tables = {
            str(row[0])
            for row in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = ? and table_type = 'BASE TABLE'",
                [DATASET],
            ).fetchall()
        }
        assert {"task_followers", "tasks__collaborators", "tasklist_tasks", "_feishu_history_loads"} <= tables
        for table in tables - DLT_AND_SHARED:
            found = con.execute(f"select distinct tenant_key from {DATASET}.{table} order by 1").fetchall()
            assert [key for (key,) in found] == keys, table
        for number, key in enumerate(keys):  # each tenant's rows are its own world's followers
            world = demo_world(TASKS, SEED + number)[0]
            read_by_v1 = [
                task_id
                for (task_id,) in con.execute(
                    f"select task_id from {DATASET}.task_fetch_status "
                    "where tenant_key = ? and status = 'ok' and api = 'v1'",
                    [key],
                ).fetchall()
            ]
            assert len(read_by_v1) > TASKS // 2, key
            loaded: dict[str, set[str]] = {}
            for task_id, follower_id in con.execute(
                f"select task_id, follower_id from {DATASET}.task_followers "
                "where tenant_key = ? and task_id in (select unnest(?))",
                [key, read_by_v1],
            ).fetchall():
                loaded.setdefault(task_id, set()).add(follower_id)
            assert loaded == truth(world, read_by_v1), key
    # each tenant its own dlt pipeline in the demo's pipelines folder, beside the journal
    assert sorted(p.name for p in pipelines.iterdir() if p.is_dir()) == [
        f"feishu_followers_demo__{key}" for key in keys
    ]
    # again, into the same file: a new simulator, a new ticket (not the one the journal kept)
    again = cli([*args, "--duckdb", str(database), "--pipelines-dir", str(pipelines)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{TENANTS} of {TENANTS} tenant(s) loaded" in again.stdout


def test_the_simulator_serves_a_store_app_from_its_command_line(tmp_path: Path) -> None:
    """``python -m feishu_simulator --store-tenants 2``, then the README's steps: ``listen`` at the
    app's request URL (it records the pushed installs and app_ticket), ``run --all-tenants``."""
    server = subprocess.Popen(
        [sys.executable, "-m", "feishu_simulator", "--store-tenants", "2", "--tasks", "12", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert "(store app, 2 tenants) listening on" in first, first
        base_url = first.rsplit(" ", 1)[1].strip()
        printed = [server.stdout.readline() for _ in range(3)]
        token = printed[2].split("verification_token=", 1)[1].split()[0]  # the console's, as printed
        listener = Listener(tmp_path / "journal.sqlite", tmp_path, listen_env(token, encrypt_key=None))
        verified = httpx.post(f"{base_url}/_sim/events/request_url", json={"url": listener.ready()}).json()
        assert verified["verified"] is True
        wait_for(
            lambda: recorded_tenants(listener.journal) == {"tenant_1": "installed", "tenant_2": "installed"},
            "the installs the simulator pushed",
        )
        env = {
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": "cli_demo",
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": "demo-secret",
            "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE": "store",
            "SOURCES__FEISHU_TASKS__BASE_URL": base_url,
        }
        database = tmp_path / "store.duckdb"
        done = cli(
            ["run", "--all-tenants", "--discover", "--journal", str(listener.journal), "--quiet"]
            + ["--duckdb", str(database), "--pipelines-dir", str(tmp_path / "p")],
            tmp_path,
            env,
        )
        listener.stop()
    finally:
        server.terminate()
        server.wait(30)
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["tenant tenant_1", "tenant tenant_2"]
    with duckdb.connect(str(database), read_only=True) as con:
        for number, key in enumerate(("tenant_1", "tenant_2")):
            world = World.generate(tasks=12, seed=5 + number)
            rows = con.execute(
                f"select task_id, follower_id from {DATASET}.task_followers where tenant_key = ?", [key]
            ).fetchall()
            loaded: dict[str, set[str]] = {}
            for task_id, follower_id in rows:
                loaded.setdefault(task_id, set()).add(follower_id)
            assert loaded == truth(world, world.task_ids()), key


def recorded_tenants(journal: Path) -> dict[str, str]:
    with Journal(journal) as opened:
        return dict(opened.tenants())
