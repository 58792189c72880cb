"""``feishu-followers demo --store-app``: the demo as a store (ISV) app, several tenants, one dataset.

The simulator serves a store app installed by a few tenants, each its own world and quota. The
demo's own receiver (``listen``'s server, in a thread, as ``follow`` runs it) is the app's request
URL: it records the ``app_ticket`` the simulator pushes and each tenant's install (``app_open``) in
the journal, as ``listen`` does. Then ``run --all-tenants`` loads every installed tenant through
the ticket → app token → tenant token chain into the demo's DuckDB file, each tenant its own dlt
pipeline, and the demo prints each tenant's figures.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import duckdb

from feishu_simulator import Faults
from feishu_simulator.store import StoreSimulator
from feishu_tasks.errors import FatalError
from feishu_tasks.journal import Journal

from .demo import demo_run_options, demo_world
from .demo_follow import DEMO_ENCRYPT_KEY, DEMO_VERIFICATION_TOKEN
from .events import EventKeys
from .follow_receiver import ReceiverThread
from .listen_settings import ListenSettings
from .options import RunOptions
from .tenants import format_tenants, run_tenants

DEMO_STORE_APP_ID = "cli_store_demo"
DEMO_STORE_APP_SECRET = "store-demo-secret"  # the simulator's own fake store app, not a real credential
DEFAULT_TENANTS = 3
RECORDED_SECONDS = 60.0  # the receiver records the ticket and the installs within this, on a busy machine too


def tenant_keys(count: int) -> list[str]:
    """The simulated tenants' keys (plain tokens, as Feishu's ``app_open`` gives them)."""
    return [f"demo_tenant_{number}" for number in range(1, count + 1)]


def run_store_demo(
    duckdb_path: str,
    tenants: int = DEFAULT_TENANTS,
    tasks: int = 300,
    seed: int = 42,
    pipelines_dir: str | None = None,
    quiet: bool = False,
) -> tuple[str, int]:
    """Serve a store app of ``tenants`` tenants, receive its events, load them all; the report and
    the exit code (1 when a tenant failed, as ``run --all-tenants``)."""
    keys = tenant_keys(tenants)
    worlds = {key: demo_world(tasks, seed + number)[0] for number, key in enumerate(keys)}
    sim = StoreSimulator(worlds, app_id=DEMO_STORE_APP_ID, app_secret=DEMO_STORE_APP_SECRET)
    sim.events.settings.update(
        {"verification_token": DEMO_VERIFICATION_TOKEN, "encrypt_key": DEMO_ENCRYPT_KEY}
    )
    for number, key in enumerate(keys):  # each tenant its own mild faults, on its own quota
        sim.tenant(key).faults = Faults(latency_ms=2, rate_limit_fraction=0.02, seed=seed + number)
    with sim:
        options = store_run_options(sim.base_url, duckdb_path, pipelines_dir, quiet)
        journal = str(options.journal_file())
        options = dataclasses.replace(options, journal=journal)
        receiver = ReceiverThread(
            {"host": "127.0.0.1", "port": 0},
            ListenSettings(journal, EventKeys(DEMO_VERIFICATION_TOKEN, DEMO_ENCRYPT_KEY)),
            lambda line: None,
            name="demo-store-receiver",
        )
        receiver.start()
        try:
            sim.events.set_request_url(receiver.url)  # the console's request URL, verified
            for key in keys:
                sim.store.set_status(key, "installed")  # app_open, pushed to the receiver
            wait_recorded(journal, keys, sim.push_ticket())
            outcomes = run_tenants(options, notify=(lambda line: None) if quiet else _say)
        finally:
            receiver.stop()
            receiver.join(10)
    report = [format_tenants(outcomes), "", per_tenant(duckdb_path, options.dataset)]
    return "\n".join(report), 1 if any(o.failed for o in outcomes) else 0


def store_run_options(base_url: str, duckdb_path: str, pipelines_dir: str | None, quiet: bool) -> RunOptions:
    """The demo's run (every task list, discovery), as the store app, for every installed tenant."""
    options = demo_run_options(base_url, duckdb_path, [], pipelines_dir, quiet)
    credentials = {"app_id": DEMO_STORE_APP_ID, "app_secret": DEMO_STORE_APP_SECRET, "app_type": "store"}
    return dataclasses.replace(
        options, all_tenants=True, source_args={**options.source_args, "credentials": credentials}
    )


def wait_recorded(journal: str, keys: list[str], ticket: str) -> None:
    """Until the journal holds this ``ticket`` (not one a demo before recorded) and every tenant's
    install (bounded)."""

    def recorded() -> bool:
        with Journal(journal) as opened:
            installed = opened.tenants()
            latest = opened.latest_ticket(DEMO_STORE_APP_ID)
        return (
            latest is not None and latest[0] == ticket and all(installed.get(k) == "installed" for k in keys)
        )

    _wait(
        recorded,
        f"the receiver did not record the app_ticket and the installs within {RECORDED_SECONDS:.0f} s",
    )


def _wait(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + RECORDED_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise FatalError(failure)
        time.sleep(0.05)


def _say(line: str) -> None:
    from .stderr import say

    say(line)


def per_tenant(duckdb_path: str, dataset: str) -> str:
    """Each tenant's figures, from what the file holds: lists, tasks by outcome, follows, the top task."""
    same_tenant = "x.tenant_key = s.tenant_key"
    with duckdb.connect(duckdb_path, read_only=True) as con:
        rows = con.execute(
            f"""select s.tenant_key,
                       (select count(*) from {dataset}.tasklist_fetch_status x where {same_tenant}),
                       count(*) filter (where s.status = 'ok'), count(*) filter (where s.status <> 'ok'),
                       (select count(*) from {dataset}.task_followers x where {same_tenant})
                from {dataset}.task_fetch_status s group by s.tenant_key order by s.tenant_key"""
        ).fetchall()
        top = dict(
            con.execute(
                f"""select tenant_key, arg_max(coalesce(summary, task_id), followers)
                    from {dataset}.followers_per_task group by tenant_key"""
            ).fetchall()
        )
    if not rows:
        return f"Nothing was loaded into {duckdb_path}."
    lines = [
        f"Per tenant, all that {duckdb_path} holds (one dataset, every row with its tenant_key):",
        f"  {'tenant_key':<16} {'lists':>5} {'tasks ok':>8} {'not ok':>6} {'follows':>7}  most-followed task",
    ]
    lines += [
        f"  {key:<16} {lists:>5} {ok:>8} {not_ok:>6} {follows:>7}  {top.get(key) or ''}"
        for key, lists, ok, not_ok, follows in rows
    ]
    example = next((key for key, *_ in rows if key), rows[0][0])  # a store tenant, not a custom demo's ''
    lines.append(
        f'One tenant in Python: FollowerAnalytics.open("{duckdb_path}").for_tenant("{example}"); '
        f"in SQL: where tenant_key = '{example}'"
    )
    return "\n".join(lines)
