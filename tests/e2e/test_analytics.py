"""The pandas API: the same answers as the views, checked against the simulator's truth."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from itertools import combinations
from typing import Any

import duckdb
import pytest
from dlt.destinations.exceptions import DatabaseException

from feishu_followers.analytics import FollowerAnalytics
from feishu_followers.run import run
from feishu_followers.views import BUCKETS
from feishu_followers.waiting import DestinationBusy
from feishu_simulator import World

from .conftest import DATASET, Loader, on_every_destination, wait_until


def analytics(loader: Loader) -> FollowerAnalytics:
    """From the pipeline on every destination (what a notebook does), or the DuckDB file itself."""
    if loader.destination == "duckdb":
        return FollowerAnalytics.open(loader.duckdb)
    return FollowerAnalytics.from_pipeline(pipelines_dir=loader.pipelines_dir)  # the CLI's, by default


@on_every_destination
def test_dataframes_match_truth(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    small = [t for t in ids if len(world.followers(t)) <= 5]
    big = next(t for t in ids if len(world.followers(t)) > 50)
    forbidden = small.pop()
    world.set_forbidden(forbidden)
    loader.run([*small, big, forbidden])
    truth = {t: set(world.followers(t)) for t in [*small, big]}

    with analytics(loader) as fa:
        distribution = fa.follower_count_distribution()
        top_tasks = fa.most_followed_tasks(3)
        active = fa.most_active_followers(5)
        pairs = fa.co_following_pairs(min_shared=2)
        matrix = fa.co_following_matrix(top=6)
        without = fa.tasks_without_followers()
        health = fa.load_health()
        last_fetch = fa.last_fetch_per_task()
        churn = fa.churn_daily()
        # the DuckDB file is opened read-only; every query runs in a transaction rolled back
        with contextlib.suppress(DatabaseException):
            fa.sql(f"create table {DATASET}.scratch (x int)")
    assert ("scratch",) not in loader.query(
        f"select table_name from information_schema.tables where table_schema = '{DATASET}'"
    )
    # the same dtypes from every driver
    assert {c: str(t) for c, t in last_fetch.dtypes.items()} == {
        "task_id": "str",
        "status": "str",
        "error_code": "Int64",
        "error_msg": "str",
        "follower_count": "Int64",
        "user_id_type": "str",
        "fetched_at": "datetime64[us, UTC]",
        "last_ok_at": "datetime64[us, UTC]",
        "age": "timedelta64[us]",
        "tenant_key": "str",
    }
    assert str(churn["day"].dtype) == "datetime64[us]" and str(churn["added"].dtype) == "int64"
    assert str(distribution["max_followers"].dtype) == "Int64"

    sizes = Counter(
        next(label for _, label, lo, hi in BUCKETS if len(f) >= lo and (hi is None or len(f) <= hi))
        for f in truth.values()
    )
    assert list(distribution["bucket"]) == [label for _, label, _, _ in BUCKETS]
    assert list(distribution["tasks"]) == [sizes[label] for _, label, _, _ in BUCKETS]
    assert sizes["6-20"] == sizes["21-50"] == 0  # empty buckets are still listed

    by_size = sorted(truth, key=lambda t: (-len(truth[t]), t))[:3]
    assert list(top_tasks["task_id"]) == by_size
    assert list(top_tasks["followers"]) == [len(truth[t]) for t in by_size]

    tasks_of = Counter(f for follows in truth.values() for f in follows)
    busiest = sorted(tasks_of, key=lambda f: (-tasks_of[f], f))[:5]
    assert list(active["follower_id"]) == busiest
    assert list(active["tasks_now"]) == [tasks_of[f] for f in busiest]

    shared: Counter = Counter()
    for follows in truth.values():
        shared.update(combinations(sorted(follows), 2))
    assert {
        (a, b): n for a, b, n in pairs[["follower_a", "follower_b", "shared_tasks"]].itertuples(index=False)
    } == {pair: n for pair, n in shared.items() if n >= 2}
    people = list(matrix.index)
    assert people == sorted(tasks_of, key=lambda f: (-tasks_of[f], f))[:6] == list(matrix.columns)
    for a in people:
        for b in people:
            expected = tasks_of[a] if a == b else shared[tuple(sorted((a, b)))]
            assert matrix.loc[a, b] == expected

    assert set(without["task_id"]) == {t for t, f in truth.items() if not f} != set()
    assert dict(zip(health["status"], health["tasks"], strict=True)) == {
        "ok": len(truth),
        "invalid_task": 0,
        "no_permission": 1,
        "failed": 0,
    }


@on_every_destination
def test_churn_per_load_and_daily(loader: Loader, world: World) -> None:
    ids = world.task_ids()[:10]
    target = next(t for t in ids if len(world.followers(t)) >= 2)
    loader.run(ids)
    world.remove_follower(target, world.followers(target)[0])
    world.add_follower(target)
    world.add_follower(target)
    loader.run(ids)

    with analytics(loader) as fa:
        per_load = fa.churn_per_load()
        daily = fa.churn_daily()
        per_follower = fa.tasks_per_follower()
    assert per_load[["added", "removed", "net"]].values.tolist() == [[0, 0, 0], [2, 1, 1]]
    assert (daily["added"].sum(), daily["removed"].sum()) == (2, 1)
    assert (per_follower["tasks_ever"] - per_follower["tasks_now"]).sum() == 1  # the one unfollow


@on_every_destination
def test_stale_tasks_follow_the_stale_after_rule(loader: Loader, world: World) -> None:
    """Ages are made by moving fetch times back (a run cannot wait a day): then the API,
    the 24 h ``stale_tasks`` view and ``--stale-after`` must pick the same tasks."""
    ids = world.task_ids()[:8]
    world.set_forbidden(ids[7])  # never fetched ok: its age counts from its last try
    loader.run([*ids, "not-a-task-id"])
    backdate = {ids[0]: "2 days", ids[1]: "2 hours", ids[7]: "3 hours", "not-a-task-id": "3 days"}
    for task_id, age in backdate.items():
        loader.execute(
            f"""update {DATASET}.task_fetch_status set fetched_at = fetched_at - interval '{age}',
                last_ok_at = last_ok_at - interval '{age}' where task_id = %s""",
            task_id,
        )

    with analytics(loader) as fa:
        within_hour = list(fa.stale_tasks("1h")["task_id"])
        within_day = list(fa.stale_tasks()["task_id"])
        as_timedelta = list(fa.stale_tasks(timedelta(hours=2, minutes=30))["task_id"])
        view = list(fa.sql("select task_id from {ds}.stale_tasks")["task_id"])
        health = fa.load_health().set_index("status")["stale_tasks"].to_dict()
        last_fetch = fa.last_fetch_per_task()
    assert within_hour == [ids[0], ids[7], ids[1]]  # oldest first; invalid ids are never stale
    assert within_day == view == [ids[0]]
    assert as_timedelta == [ids[0], ids[7]]
    assert health == {"ok": 1, "invalid_task": 0, "no_permission": 0, "failed": 0}
    assert list(last_fetch["task_id"][:2]) == ["not-a-task-id", ids[0]]
    assert last_fetch.set_index("task_id")["age"][ids[1]] > timedelta(hours=2)

    options = loader.options(ids)
    options.task_ids, options.stale_after, options.dry_run = [], timedelta(hours=1), True
    assert list(run(options).planned_requests) == within_hour  # what the sweep would re-fetch


def test_open_refuses_what_it_cannot_answer(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        FollowerAnalytics.open(tmp_path / "missing.duckdb")
    duckdb.connect(str(tmp_path / "plain.duckdb")).close()
    with pytest.raises(LookupError, match="no analytics views"):
        FollowerAnalytics.open(tmp_path / "plain.duckdb")


def test_an_open_reader_does_not_block_the_next_load(loader: Loader, world: World) -> None:
    """DuckDB allows one writer process: the API holds the file only for the length of a query."""
    ids = world.task_ids()
    loader.run(ids[:5])
    with FollowerAnalytics.open(loader.duckdb) as fa:
        before = fa.followers_per_task()
        loader.run(ids[5:10])  # the scheduled load, while a notebook keeps `fa`
        after = fa.followers_per_task()
    assert set(before["task_id"]) == set(ids[:5])
    assert set(after["task_id"]) == set(ids[:10])


HOLD_FILE = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.readline()"
)


def test_a_file_a_load_holds_is_waited_for_then_said_busy(
    loader: Loader, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 21, 6: during a load the API failed with dlt's "check if you configured the credentials"."""
    loader.run(world.task_ids()[:5])
    fa = FollowerAnalytics.open(loader.duckdb, lock_timeout=0.5)
    holder = subprocess.Popen(  # a load, writing: DuckDB lets no other process open the file
        [sys.executable, "-c", HOLD_FILE, str(loader.duckdb)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        in_use = r"the DuckDB file is in use elsewhere \(held by PID"
        with pytest.raises(DestinationBusy, match=in_use) as busy:
            fa.followers_per_task()
        assert "credentials" not in str(busy.value) and "try again once the load ends" in str(busy.value)

        fa.lock_timeout = 120  # the default's order: a query waits for the load to end
        answer: dict[str, Any] = {}
        reader = threading.Thread(target=lambda: answer.update(frame=fa.followers_per_task()))
        reader.start()
        said: list[str] = []

        def waiting() -> bool:
            assert reader.is_alive(), "the query did not wait"
            said.append(capsys.readouterr().err)
            return "waiting up to 120 s for the DuckDB file (reading the analytics views)" in "".join(said)

        wait_until(waiting, "the query never said it waits")
        holder.communicate("\n", timeout=60)  # the load ends
        reader.join(timeout=120)
        assert set(answer["frame"]["task_id"]) == set(world.task_ids()[:5])
    finally:
        holder.kill()
        holder.wait()
