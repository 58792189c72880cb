"""A store app end to end: the simulator serves several tenants, ``listen`` records the app_ticket it
pushes, and ``run --tenant`` loads each tenant through the token chain (ticket → app token → tenant
token) into the one dataset, each tenant's rows its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from feishu_followers.analytics import FollowerAnalytics
from feishu_simulator import Simulator, World
from feishu_simulator.store import StoreSimulator
from feishu_tasks.journal import Journal

from .conftest import Loader, cli, on_every_destination, sim_env, truth
from .listen_harness import ENCRYPT_KEY, VERIFICATION_TOKEN, Listener, listen_env, wait_for

APP_ID, APP_SECRET = "cli_store_app", "store-secret-77a1c9"
TENANTS = ("tenant_alpha", "tenant_beta")


@pytest.fixture
def worlds() -> dict[str, World]:
    return {key: World.generate(tasks=12, seed=30 + i) for i, key in enumerate(TENANTS)}


@pytest.fixture
def store(worlds: dict[str, World], tmp_path: Path) -> Iterator[StoreSimulator]:
    sim = StoreSimulator(worlds, app_id=APP_ID, app_secret=APP_SECRET)
    sim.events.settings.update({"verification_token": VERIFICATION_TOKEN, "encrypt_key": ENCRYPT_KEY})
    with sim:
        yield sim


@pytest.fixture
def listener(store: StoreSimulator, tmp_path: Path) -> Iterator[Listener]:
    """``listen`` at the app's request URL: it records the tickets the simulator pushes."""
    process = Listener(tmp_path / "journal.sqlite", tmp_path, listen_env())
    store.events.set_request_url(process.ready())
    yield process
    process.stop()


@pytest.fixture
def pg_url(destination: str, request: pytest.FixtureRequest) -> str:
    """This test's own database on the session's Postgres server; ``''`` on DuckDB."""
    return str(request.getfixturevalue("postgres_url")) if destination == "postgres" else ""


def store_env(sim: StoreSimulator) -> dict[str, str]:
    return {
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET": APP_SECRET,
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE": "store",
        "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
        "SOURCES__FEISHU_TASKS__BACKOFF_BASE_SECONDS": "0.01",
    }


def run_store(
    sim: StoreSimulator, tmp_path: Path, listener: Listener, *args: str, loader: Loader | None = None
) -> tuple[int, str, str]:
    """``run`` with the store app's credentials, into ``loader``'s destination (default DuckDB)."""
    loader = loader or Loader(sim, tmp_path)
    done = cli(
        ["run", *args, "--journal", str(listener.journal), "--json", *loader.cli_args()],
        tmp_path,
        store_env(sim) | loader.cli_env(),
    )
    return done.returncode, done.stdout, done.stderr


def business_requests(sim: StoreSimulator, tenant: str) -> int:
    by_endpoint = sim.tenant(tenant).stats.as_dict()["by_endpoint"]
    return sum(count for name, count in by_endpoint.items() if name != "token")


def test_one_tenant_loads_through_the_ticket_the_receiver_recorded(
    store: StoreSimulator, worlds: dict[str, World], listener: Listener, tmp_path: Path
) -> None:
    ids = worlds["tenant_alpha"].task_ids()[:10]
    flags = [arg for task_id in ids for arg in ("--task-id", task_id)]
    code, out, err = run_store(store, tmp_path, listener, "--tenant", "tenant_alpha", *flags)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["failed"] == []
    assert summary["tenants"]["tenant_alpha"]["tasks"]["ok"] == 10
    loader = Loader(store, tmp_path)
    assert loader.followers() == truth(worlds["tenant_alpha"], ids)
    assert loader.query("select distinct tenant_key from feishu_tasks.task_followers") == [("tenant_alpha",)]
    assert business_requests(store, "tenant_beta") == 0  # the other tenant's quota untouched
    assert "app_ticket" in err  # no ticket yet: it asked Feishu for one and said what it waits for
    secrets = [APP_SECRET, store.events.ticket or "", *store.store.tenant_tokens()]
    stored = (tmp_path / "followers.duckdb").read_bytes()
    for secret in secrets:
        assert secret and secret not in out and secret not in err
        assert secret.encode() not in stored


def test_a_tenant_key_that_is_not_a_plain_token_is_refused_before_any_request(
    store: StoreSimulator, listener: Listener, tmp_path: Path
) -> None:
    code, out, err = run_store(store, tmp_path, listener, "--tenant", "a b;drop", "--discover")
    assert code == 1
    assert err.count("\n") == 1 and "'a b;drop' is not a tenant key" in err, err
    for tenant in store.store.tenants.values():
        counted = tenant.stats.as_dict()
        assert counted["business_requests"] == counted["token_requests"] == 0


def test_a_stopped_tenant_fails_alone(
    store: StoreSimulator, worlds: dict[str, World], listener: Listener, tmp_path: Path
) -> None:
    store.store.set_status("tenant_beta", "stopped")
    code, out, err = run_store(
        store, tmp_path, listener, "--tenant", "tenant_beta", "--tenant", "tenant_alpha", "--discover"
    )
    assert code == 1, err
    summary = json.loads(out)
    assert summary["failed"] == ["tenant_beta"]
    assert "stopped or uninstalled the app" in summary["tenants"]["tenant_beta"]["error"]
    assert summary["tenants"]["tenant_alpha"]["tasks"]["ok"] == len(worlds["tenant_alpha"].task_ids())
    loader = Loader(store, tmp_path)
    assert set(loader.followers()) <= set(worlds["tenant_alpha"].task_ids())


def test_a_ticket_the_endpoint_rejects_is_resent_once_then_one_line(
    store: StoreSimulator, listener: Listener, tmp_path: Path
) -> None:
    store.store.refuse_tickets = True
    code, out, err = run_store(store, tmp_path, listener, "--tenant", "tenant_alpha", "--discover")
    assert code == 1
    error = json.loads(out)["tenants"]["tenant_alpha"]["error"]
    assert "refused the app_access_token" in error and "also with a resent app_ticket" in error
    assert business_requests(store, "tenant_alpha") == 0


def test_token_endpoint_429_and_500_for_one_tenant_are_retried_for_that_tenant(
    store: StoreSimulator, worlds: dict[str, World], listener: Listener, tmp_path: Path
) -> None:
    beta = store.tenant("tenant_beta").faults
    beta.token_rate_limit_times, beta.token_rate_limit_reset_seconds, beta.token_error_500_times = 1, 1, 1
    code, out, err = run_store(
        store, tmp_path, listener, "--tenant", "tenant_alpha", "--tenant", "tenant_beta", "--discover"
    )
    assert code == 0, err
    tenants = json.loads(out)["tenants"]
    for key in TENANTS:
        assert tenants[key]["tasks"]["ok"] == len(worlds[key].task_ids())
    answers = {key: store.tenant(key).stats.as_dict() for key in TENANTS}
    assert answers["tenant_alpha"]["token_requests"] == 1, answers  # asked once, answered at once
    assert answers["tenant_beta"]["token_requests"] == 3, answers  # 429, 500, then its token
    assert tenants["tenant_alpha"]["retries"] == 0


def followers_of(loader: Loader, tenant: str) -> dict[str, set[str]]:
    current: dict[str, set[str]] = {}
    rows = loader.query(
        "select task_id, follower_id from feishu_tasks.task_followers where tenant_key = %s", tenant
    )
    for task_id, follower_id in rows:
        current.setdefault(task_id, set()).add(follower_id)
    return current


@on_every_destination
def test_tenants_with_the_same_task_ids_keep_their_own_rows(
    destination: str, pg_url: str, tmp_path: Path
) -> None:
    """Two tenants whose worlds hold the same task ids: each tenant's rows are its own, also after a
    change in one of them (the merge replaces a task's followers within its tenant only)."""
    worlds = {key: World.generate(tasks=12, seed=77) for key in TENANTS}
    beta = worlds["tenant_beta"]
    changed = next(t for t in beta.task_ids() if len(beta.followers(t)) >= 2)
    sim = StoreSimulator(worlds, app_id=APP_ID, app_secret=APP_SECRET)
    sim.events.settings.update({"verification_token": VERIFICATION_TOKEN, "encrypt_key": ENCRYPT_KEY})
    process = Listener(tmp_path / "journal.sqlite", tmp_path, listen_env())
    loader = Loader(sim, tmp_path, destination, pg_url)
    with sim:
        sim.events.set_request_url(process.ready())
        tenants = ("--tenant", "tenant_alpha", "--tenant", "tenant_beta", "--discover")
        code, out, err = run_store(sim, tmp_path, process, *tenants, loader=loader)
        assert code == 0, err
        beta.remove_follower(changed, beta.followers(changed)[0])
        code, out, err = run_store(
            sim, tmp_path, process, "--tenant", "tenant_beta", "--discover", "--full-refresh", loader=loader
        )
        assert code == 0, err
    process.stop()
    for key, world in worlds.items():
        assert followers_of(loader, key) == truth(world, world.task_ids()), key
    assert followers_of(loader, "tenant_alpha")[changed] != followers_of(loader, "tenant_beta")[changed]
    statuses = loader.query(
        "select tenant_key, count(*) from feishu_tasks.task_fetch_status group by 1 order by 1"
    )
    assert statuses == [("tenant_alpha", 12), ("tenant_beta", 12)]
    tables = tables_of_rows(loader)
    assert {"tasks", "tasks__collaborators", "task_follower_history", "_feishu_history_loads"} <= tables
    for table in tables:  # dlt's child tables and our bookkeeping too: a warehouse filters each by tenant
        keys = loader.query(f"select distinct tenant_key from feishu_tasks.{table} order by 1")
        assert keys == [("tenant_alpha",), ("tenant_beta",)], table
    check_analytics_per_tenant(loader, changed)


def check_analytics_per_tenant(loader: Loader, changed: str) -> None:
    """The pandas API answers per tenant (``for_tenant``) and across tenants, the counts included:
    beta's removed follow is beta's churn alone, each tenant's distribution and health count its
    own 12 tasks, and each tenant's loads are its own."""
    everyone = FollowerAnalytics(loader.sql_client)
    alpha, beta = everyone.for_tenant("tenant_alpha"), everyone.for_tenant("tenant_beta")
    for one in (alpha, beta):
        assert set(one.followers_per_task()["tenant_key"]) == {one.tenant_key}
        assert one.follower_count_distribution()["tasks"].sum() == 12
        assert one.load_health()["tasks"].sum() == 12
    assert everyone.follower_count_distribution()["tasks"].sum() == 24
    assert everyone.load_health()["tasks"].sum() == 24
    assert beta.churn_daily()["removed"].sum() == 1 and alpha.churn_daily()["removed"].sum() == 0
    assert everyone.churn_daily()["removed"].sum() == 1
    loads = {
        key: set(
            loader.query("select load_id from feishu_tasks._feishu_history_loads where tenant_key = %s", key)
        )
        for key in TENANTS
    }
    assert {(row,) for row in alpha.churn_per_load()["load_id"]} == loads["tenant_alpha"]
    assert {(row,) for row in beta.churn_per_load()["load_id"]} == loads["tenant_beta"]
    assert beta.churn_per_load()["removed"].sum() == 1
    assert changed in set(beta.followers_per_task()["task_id"])


def tables_of_rows(loader: Loader) -> set[str]:
    """Every table of the dataset but dlt's own and ``_feishu_views`` (the views, shared by all)."""
    rows = loader.query(
        "select table_name from information_schema.tables where table_schema = 'feishu_tasks' "
        "and table_type = 'BASE TABLE'"
    )
    return {str(r[0]) for r in rows} - {"_dlt_loads", "_dlt_version", "_dlt_pipeline_state", "_feishu_views"}


def recorded_tenants(journal: Path) -> dict[str, str]:
    with Journal(journal) as opened:
        return dict(opened.tenants())


@on_every_destination
def test_all_tenants_loads_every_installed_active_tenant_side_by_side(
    destination: str, pg_url: str, tmp_path: Path
) -> None:
    keys = ("tenant_alpha", "tenant_beta", "tenant_gamma")
    worlds = {key: World.generate(tasks=10, seed=50 + i) for i, key in enumerate(keys)}
    sim = StoreSimulator(worlds, app_id=APP_ID, app_secret=APP_SECRET)
    sim.events.settings.update({"verification_token": VERIFICATION_TOKEN, "encrypt_key": ENCRYPT_KEY})
    process = Listener(tmp_path / "journal.sqlite", tmp_path, listen_env())
    loader = Loader(sim, tmp_path, destination, pg_url)
    with sim:
        sim.events.set_request_url(process.ready())
        for key in keys:  # each installs the app; then gamma stops it
            sim.store.set_status(key, "installed")
        sim.store.set_status("tenant_gamma", "stopped")
        wait_for(
            lambda: recorded_tenants(process.journal).get("tenant_gamma") == "stopped",
            "the installs recorded",
        )
        code, out, err = run_store(sim, tmp_path, process, "--all-tenants", "--discover", loader=loader)
        named = run_store(sim, tmp_path, process, "--tenant", "tenant_gamma", "--discover", loader=loader)
    process.stop()
    assert named[0] == 1
    gamma = json.loads(named[1])["tenants"]["tenant_gamma"]
    assert gamma["app_status"] == "stopped" and "stopped or uninstalled the app" in gamma["error"]
    assert code == 0, err
    summary = json.loads(out)
    assert sorted(summary["tenants"]) == ["tenant_alpha", "tenant_beta"]  # not the stopped one
    for key in ("tenant_alpha", "tenant_beta"):
        assert summary["tenants"][key]["tasks"]["ok"] == 10
        assert summary["tenants"][key]["rate_limited"] == 0
        assert summary["tenants"][key]["app_status"] == "installed"
    assert business_requests(sim, "tenant_gamma") == 0
    for key in ("tenant_alpha", "tenant_beta"):
        assert followers_of(loader, key) == truth(worlds[key], worlds[key].task_ids())
    for key in ("tenant_alpha", "tenant_beta"):  # each tenant its own pipeline: its own working folder
        assert (tmp_path / "pipelines" / f"feishu_followers__{key}").is_dir()


@on_every_destination
def test_a_tenant_that_uninstalls_mid_run_keeps_its_rows_and_the_others_finish(
    store: StoreSimulator,
    worlds: dict[str, World],
    listener: Listener,
    tmp_path: Path,
    destination: str,
    pg_url: str,
) -> None:
    loader = Loader(store, tmp_path, destination, pg_url)
    both = ("--tenant", "tenant_alpha", "--tenant", "tenant_beta", "--discover")
    code, out, err = run_store(store, tmp_path, listener, *both, loader=loader)
    assert code == 0, err
    kept = followers_of(loader, "tenant_beta")
    assert kept
    store.tenant("tenant_beta").faults.latency_ms = 100  # beta's run is still going when it uninstalls
    before = business_requests(store, "tenant_beta")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    command = [sys.executable, "-m", "feishu_followers.cli", "run", *both, "--full-refresh", "--json"]
    command += ["--journal", str(listener.journal), *loader.cli_args()]
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env | store_env(store) | loader.cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as running:
        wait_for(lambda: business_requests(store, "tenant_beta") >= before + 2, "beta's run to start", 120)
        store.store.set_status("tenant_beta", "uninstalled")
        out, err = running.communicate(timeout=300)
    assert running.returncode == 1, err
    summary = json.loads(out)
    assert summary["failed"] == ["tenant_beta"]
    assert "uninstalled" in summary["tenants"]["tenant_beta"]["error"]
    assert summary["tenants"]["tenant_alpha"]["tasks"]["ok"] == 12
    assert followers_of(loader, "tenant_beta") == kept  # what it had loaded stays
    assert followers_of(loader, "tenant_alpha") == truth(
        worlds["tenant_alpha"], worlds["tenant_alpha"].task_ids()
    )


def test_quiet_gives_one_line_per_tenant(store: StoreSimulator, listener: Listener, tmp_path: Path) -> None:
    loader = Loader(store, tmp_path)
    done = cli(
        ["run", "--tenant", "tenant_alpha", "--tenant", "tenant_beta", "--discover", "--quiet"]
        + ["--journal", str(listener.journal), *loader.cli_args()],
        tmp_path,
        store_env(store),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["tenant tenant_alpha", "tenant tenant_beta"]
    assert all("loaded 12 task(s)" in line for line in lines), lines


def test_a_custom_app_named_with_its_tenant_key_writes_it_on_its_rows(
    sim: Simulator, world: World, tmp_path: Path
) -> None:
    loader = Loader(sim, tmp_path)
    done = cli(
        ["run", "--tenant", "own.tenant-1", "--discover", "--quiet", *loader.cli_args()],
        tmp_path,
        sim_env(sim),
    )
    assert done.returncode == 0, done.stderr
    assert loader.query("select distinct tenant_key from feishu_tasks.task_fetch_status") == [
        ("own.tenant-1",)
    ]
    assert loader.followers() == truth(world, world.task_ids())
