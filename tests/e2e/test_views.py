"""Analyst views: exact answers after real runs, checked against the simulator's truth."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import combinations

from feishu_followers.run import make_pipeline
from feishu_followers.views import BUCKETS, create_views
from feishu_simulator import World

from .conftest import DATASET, Loader, on_every_destination

BAD_ID = "not-a-task-id"


def view(loader: Loader, name: str, order_by: str = "1") -> list[tuple]:
    return loader.query(f"select * from {DATASET}.{name} order by {order_by}")


def bucket_of(count: int) -> str:
    return next(label for _, label, lo, hi in BUCKETS if count >= lo and (hi is None or count <= hi))


def expected_pairs(follows: dict[str, set[str]]) -> Counter:
    """Shared tasks per unordered pair of followers, from a task → followers mapping."""
    pairs: Counter = Counter()
    for followers in follows.values():
        pairs.update(combinations(sorted(followers), 2))
    return pairs


@on_every_destination
def test_views_match_truth_and_follow_changes_between_runs(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    grow, shrink, empty, forbidden = [t for t in ids[:-1] if 2 <= len(world.followers(t)) <= 20][:4]
    loader.run([*ids[:-1], BAD_ID])  # no --discover: no `tasks` table yet
    first = {t: set(world.followers(t)) for t in ids[:-1]}

    per_task = {row[0]: row[1:] for row in view(loader, "followers_per_task")}
    assert {t: row[0] for t, row in per_task.items()} == {t: len(f) for t, f in first.items()}
    assert all(row[1] == "ok" and row[3] is None for row in per_task.values())  # status; no summary
    distribution = view(loader, "follower_count_distribution", "bucket_order")
    counts = Counter(bucket_of(len(f)) for f in first.values())
    assert [(row[1], row[4]) for row in distribution] == [
        (label, counts[label]) for _, label, _, _ in BUCKETS
    ]
    assert {row[0] for row in view(loader, "tasks_without_followers")} == {
        t for t, f in first.items() if not f
    }
    pairs = {(a, b): n for a, b, _, n, _ in view(loader, "co_following_pairs")}
    assert pairs == expected_pairs(first)  # keys are sorted pairs: (a, b) with a < b, never (b, a)
    last_fetched = dict(
        loader.query(f"select status, max(fetched_at) from {DATASET}.task_fetch_status group by 1")
    )
    assert [row for row in loader.query(f"select * from {DATASET}.load_health")] == [
        ("ok", len(first), 0, last_fetched["ok"]),
        ("invalid_task", 1, 0, last_fetched["invalid_task"]),
        ("no_permission", 0, 0, None),
        ("failed", 0, 0, None),
    ]

    added = [world.add_follower(grow), world.add_follower(shrink)]
    gone = world.followers(shrink)[0]
    world.remove_follower(shrink, gone)
    emptied = world.followers(empty)
    world.remove_all_followers(empty)
    world.add_follower(forbidden)
    world.set_forbidden(forbidden)  # an error keeps the old rows and changes no history
    loader.run(ids, discover=True)  # the last task is first seen now: its follows are not "added"

    second = {t: set(world.followers(t)) for t in ids if t != forbidden}
    current = {**second, forbidden: first[forbidden]}
    per_task = {row[0]: row[1:] for row in view(loader, "followers_per_task")}
    assert {t: row[0] for t, row in per_task.items()} == {t: len(f) for t, f in current.items()}
    assert per_task[forbidden][1] == "no_permission"
    assert all(per_task[t][3] == world.task(t)["summary"] for t in second)  # `tasks` joined now
    without = {row[0] for row in view(loader, "tasks_without_followers")}
    assert without == {t for t, f in second.items() if not f} and empty in without
    assert {(a, b): n for a, b, _, n, _ in view(loader, "co_following_pairs")} == expected_pairs(current)

    ever: Counter = Counter()
    for t in ids:
        ever.update(first.get(t, set()) | current.get(t, set()))
    now = Counter(f for follows in current.values() for f in follows)
    per_follower = {row[0]: (row[2], row[3]) for row in view(loader, "tasks_per_follower")}
    assert per_follower == {f: (now[f], ever[f]) for f in ever}

    churn = view(loader, "follow_churn_per_load", "loaded_at")
    removed = 1 + len(emptied)
    assert [row[2:] for row in churn] == [(0, 0, 0), (len(added), removed, len(added) - removed)]
    daily = view(loader, "follow_churn_daily", "day")
    assert (sum(r[1] for r in daily), sum(r[2] for r in daily)) == (len(added), removed)
    days = [row[0] for row in daily]  # consecutive days (UTC), zero days included
    assert days == [days[0] + timedelta(days=n) for n in range(len(days))]
    health = {row[0]: row[1] for row in view(loader, "load_health")}
    assert health == {"ok": len(ids) - 1, "invalid_task": 1, "no_permission": 1, "failed": 0}


@on_every_destination
def test_views_answer_before_any_table_exists(loader: Loader) -> None:
    """A dataset with none of the loaded tables yet: every view is created and answers."""
    pipeline = make_pipeline(loader.options(), progress=False)
    assert create_views(pipeline) == []  # no dataset: nothing to do, nothing created
    loader.execute(f"create schema {DATASET}")
    loader.execute(f"create table {DATASET}.unrelated (x int)")
    names = create_views(pipeline)
    counts = {name: loader.query(f"select count(*) from {DATASET}.{name}")[0][0] for name in names}
    distribution = loader.query(
        f"select bucket, tasks from {DATASET}.follower_count_distribution order by bucket_order"
    )
    health = loader.query(f"select status, tasks from {DATASET}.load_health")
    assert counts == {name: 0 for name in names} | {"follower_count_distribution": 6, "load_health": 4}
    assert distribution == [(label, 0) for _, label, _, _ in BUCKETS]
    assert sorted(health) == sorted((s, 0) for s in ("ok", "invalid_task", "no_permission", "failed"))


@on_every_destination
def test_views_are_rebuilt_only_when_their_sql_changes(loader: Loader, world: World) -> None:
    """Unchanged SQL: no DDL, so a user's view on ours survives (Postgres would refuse to drop
    ours under it). Changed SQL, even with other columns (which Postgres cannot ``create or
    replace``): the set is dropped and recreated."""
    loader.run(world.task_ids()[:5])
    pipeline = make_pipeline(loader.options(), progress=False)
    loader.execute(f"create view {DATASET}.my_health as select status, tasks from {DATASET}.load_health")
    create_views(pipeline)
    assert len(loader.query(f"select * from {DATASET}.my_health")) == 4

    loader.execute(f"drop view {DATASET}.my_health")
    loader.execute(f"drop view {DATASET}.tasks_without_followers")
    loader.execute(f"create view {DATASET}.tasks_without_followers as select 1 as old_column")
    loader.execute(f"update {DATASET}._feishu_views set sql_sha256 = 'from an older release'")
    create_views(pipeline)
    columns = loader.query(
        "select column_name from information_schema.columns "
        f"where table_schema = '{DATASET}' and table_name = 'tasks_without_followers'"
    )
    assert "old_column" not in {c for (c,) in columns} and ("task_id",) in columns
    without = {t for (t,) in loader.query(f"select task_id from {DATASET}.tasks_without_followers")}
    assert without == {t for t in world.task_ids()[:5] if not world.followers(t)}


@on_every_destination
def test_task_fields_come_from_the_task_lists_without_discover(loader: Loader, world: World) -> None:
    """--all-tasklists, the recommended mode, loads no `tasks`: summaries come from `tasklist_tasks`."""
    loader.run(all_tasklists=True, followers_api="auto")
    rows = loader.query(f"select task_id, summary, complete_time, due_time from {DATASET}.followers_per_task")
    assert rows and not loader.query(
        "select 1 from information_schema.tables where table_schema = %s and table_name = 'tasks'", DATASET
    )
    for task_id, summary, complete_time, due_time in rows:
        task = world.task(task_id)
        assert summary == task["summary"]
        assert (complete_time is None) == (task["complete_time"] == "0"), task_id
        assert (due_time is None) == ("due" not in task), task_id
