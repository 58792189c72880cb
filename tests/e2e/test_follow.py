"""``feishu-followers follow`` as a real process: the simulator pushes its world's changes to the
request URL, and the assertions are on the tables the micro-batches loaded (DuckDB and Postgres)."""

from __future__ import annotations

import random
import signal
import threading
from pathlib import Path

import duckdb

from feishu_simulator import Simulator, World

from .conftest import DATASET, USER_TOKEN, Loader, cli, on_every_destination, sim_env, truth
from .listen_harness import (
    ENCRYPT_KEY,
    VERIFICATION_TOKEN,
    Listener,
    journal_rows,
    listen_env,
    settled,
    wait_for,
)

LOADED_SECONDS = 120.0  # far beyond a working batch on a busy machine


def start_follow(loader: Loader, journal: Path, cwd: Path, *extra: str) -> Listener:
    env = listen_env(**sim_env(loader.sim), **loader.cli_env())
    args = [*loader.cli_args(), "--port", "0", "--every", "0.2s", "--discover", "--all-tasklists", *extra]
    return Listener(journal, cwd, env, args, subcommand="follow")


def deliver_events(sim: Simulator, url: str) -> None:
    """The console's keys, the app's subscription and the request URL, as a deployment sets them."""
    sim.events.settings.update(
        {"verification_token": VERIFICATION_TOKEN, "encrypt_key": ENCRYPT_KEY, "time_scale": 0.001}
    )
    sim.events.coverage.subscribe(None)  # `subscribe` has its own tests (test_subscribe.py)
    assert sim.events.set_request_url(url)["verified"]


def covered(world: World) -> list[str]:
    """Tasks of the app's lists: their changes are pushed (the app's subscription covers them)."""
    in_lists = {t for g in world.find_tasklists(app_member=True) for t in world.tasklist_tasks(g)}
    return [t for t in world.task_ids() if t in in_lists and world.followers(t)]


def loaded(loader: Loader) -> dict[str, set[str]] | None:
    """``task_followers`` now, read as an analyst would between batches (None while a batch holds it)."""
    try:
        if loader.destination == "duckdb":
            with duckdb.connect(str(loader.duckdb), read_only=True) as con:
                rows = con.execute(f"select task_id, follower_id from {DATASET}.task_followers").fetchall()
            current: dict[str, set[str]] = {}
            for task_id, follower_id in rows:
                current.setdefault(task_id, set()).add(follower_id)
            return current
        return loader.followers()
    except (duckdb.Error, OSError):
        return None


def change(world: World, task_id: str, rng: random.Random) -> None:
    followers = world.followers(task_id)
    if followers and rng.random() < 0.4:
        world.remove_follower(task_id, rng.choice(followers))
    else:
        world.add_follower(task_id)


@on_every_destination
def test_follow_loads_each_pushed_change_and_holds_the_run_lock(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    process = start_follow(loader, journal, tmp_path)
    deliver_events(loader.sim, process.ready())
    wait_for(
        lambda: any("batch (sweep)" in line for line in process.lines), "the first batch", LOADED_SECONDS
    )
    assert loaded(loader) == truth(world, world.task_ids())
    busy = cli(
        ["run", "--changed", *loader.cli_args()], tmp_path, {**sim_env(loader.sim), **loader.cli_env()}
    )
    assert busy.returncode == 3 and "another run" in busy.stderr, busy.stderr
    again = cli(["follow", "--port", "0", *loader.cli_args()], tmp_path, listen_env(**sim_env(loader.sim)))
    assert again.returncode == 3 and len(again.stderr.splitlines()) == 1, again.stderr
    rng = random.Random(3)
    tasks = covered(world)
    for task_id in tasks[:6]:
        change(world, task_id, rng)
    wait_for(lambda: settled(loader.sim), "the simulator's deliveries")
    expected = truth(world, world.task_ids())
    wait_for(lambda: loaded(loader) == expected, "the changes to be loaded", LOADED_SECONDS)
    assert process.stop(signal.SIGTERM) == 0
    assert "stopped by SIGTERM" in process.lines[-1]
    assert len(journal_rows(journal)) >= 6  # pruned by the next start's first batch, once acknowledged
    for secret in (VERIFICATION_TOKEN, ENCRYPT_KEY, USER_TOKEN):
        assert secret not in process.stderr + process.stdout


def test_kill_9_while_events_keep_coming_then_restart_loads_the_truth(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    first = start_follow(loader, journal, tmp_path)
    url = first.ready()
    port = url.rsplit(":", 1)[1].split("/")[0]
    deliver_events(loader.sim, url)
    wait_for(lambda: any("batch (sweep)" in line for line in first.lines), "the first batch", LOADED_SECONDS)
    rng, tasks = random.Random(9), covered(world)
    made = [0]
    done = threading.Event()

    def keep_changing() -> None:  # changes keep coming while the process dies and comes back
        while made[0] < 120:
            change(world, rng.choice(tasks), rng)
            made[0] += 1
            done.wait(0.01)
        done.set()

    changer = threading.Thread(target=keep_changing)
    changer.start()
    wait_for(lambda: made[0] >= 30 and any("batch (changes)" in line for line in first.lines), "some batches")
    first.kill()
    second = start_follow(loader, journal, tmp_path, "--port", port)
    second.ready()
    changer.join(LOADED_SECONDS)
    wait_for(lambda: done.is_set() and settled(loader.sim), "the simulator's deliveries and retries", 300)
    expected = truth(world, world.task_ids())
    wait_for(lambda: loaded(loader) == expected, "the loaded set to equal the truth", LOADED_SECONDS)
    assert second.stop(signal.SIGINT) == 0, second.stderr


def test_without_a_verification_token_follow_refuses_in_one_line(loader: Loader, tmp_path: Path) -> None:
    env = listen_env(token=None, **sim_env(loader.sim))
    done = cli(["follow", "--port", "0", *loader.cli_args()], tmp_path, env)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "VERIFICATION_TOKEN" in done.stderr and ENCRYPT_KEY not in done.stderr
    assert not loader.duckdb.exists()  # refused before anything was created


def test_a_file_held_past_the_lock_timeout_delays_the_batch_and_follow_goes_on(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    process = start_follow(loader, journal, tmp_path, "--lock-timeout", "1s")
    deliver_events(loader.sim, process.ready())
    wait_for(
        lambda: any("batch (sweep)" in line for line in process.lines), "the first batch", LOADED_SECONDS
    )
    analyst = duckdb.connect(str(loader.duckdb))  # read-write: no batch can open the file meanwhile
    try:
        world.add_follower(covered(world)[0])
        wait_for(
            lambda: any("follow goes on" in line for line in process.lines), "a held-up batch", LOADED_SECONDS
        )
        assert process.process.poll() is None
    finally:
        analyst.close()
    expected = truth(world, world.task_ids())
    wait_for(
        lambda: loaded(loader) == expected, "the change to be loaded once the file is free", LOADED_SECONDS
    )
    assert process.stop(signal.SIGTERM) == 0


def test_over_the_long_connection_follow_loads_the_pushed_changes(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    sim = loader.sim
    sim.events.settings.update({"verification_token": VERIFICATION_TOKEN, "time_scale": 0.001})
    sim.events.coverage.subscribe(None)
    env = listen_env(encrypt_key=None, **sim_env(sim))
    args = [*loader.cli_args(), "--long-connection", "--every", "0.2s", "--discover", "--all-tasklists"]
    process = Listener(tmp_path / "journal.sqlite", tmp_path, env, args, subcommand="follow")
    process.ready_long_connection()
    wait_for(lambda: sim.events.long_connections.connected() == 1, "the connection", LOADED_SECONDS)
    wait_for(
        lambda: any("batch (sweep)" in line for line in process.lines), "the first batch", LOADED_SECONDS
    )
    rng = random.Random(5)
    for task_id in covered(world)[:5]:
        change(world, task_id, rng)
    wait_for(lambda: settled(sim), "the simulator's deliveries")
    expected = truth(world, world.task_ids())
    wait_for(lambda: loaded(loader) == expected, "the changes to be loaded", LOADED_SECONDS)
    assert process.stop(signal.SIGTERM) == 0
