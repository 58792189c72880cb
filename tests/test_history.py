"""Follow history: intervals open and close with what each run observed."""

from __future__ import annotations

from feishu_simulator import World

from .conftest import DATASET, Loader, on_every_destination


def history(loader: Loader) -> list[tuple]:
    return loader.query(
        f"select task_id, follower_id, valid_from, valid_to from {DATASET}.task_follower_history "
        "order by task_id, follower_id, valid_from"
    )


def fetched_at(loader: Loader, task_id: str):
    return loader.query(f"select fetched_at from {DATASET}.task_fetch_status where task_id = '{task_id}'")[0][
        0
    ]


def assert_open_intervals_match_current(loader: Loader) -> None:
    """Invariant: the open intervals are exactly task_followers, and never twice."""
    current = set(loader.query(f"select task_id, follower_id, user_id_type from {DATASET}.task_followers"))
    open_rows = loader.query(
        f"select task_id, follower_id, user_id_type from {DATASET}.task_follower_history "
        "where valid_to is null"
    )
    assert len(open_rows) == len(set(open_rows))
    assert set(open_rows) == current


@on_every_destination
def test_follow_unfollow_refollow_all_removed_new_and_forbidden(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    grow, shrink, empty, forbidden = [t for t in ids if len(world.followers(t)) >= 2][:4]
    loader.run(ids)
    assert_open_intervals_match_current(loader)
    first = {t: fetched_at(loader, t) for t in ids}
    assert {row[2] for row in history(loader) if row[0] == grow} == {first[grow]}

    added = world.add_follower(grow)
    gone = world.followers(shrink)[0]
    world.remove_follower(shrink, gone)
    emptied = world.followers(empty)
    world.remove_all_followers(empty)
    forbidden_before = [row for row in history(loader) if row[0] == forbidden]
    world.add_follower(forbidden)
    world.set_forbidden(forbidden, True)
    new_task = world.add_task(followers=3)
    loader.run([*ids, new_task])
    second = {t: fetched_at(loader, t) for t in [grow, shrink, empty, new_task]}
    rows = history(loader)
    assert (grow, added, second[grow], None) in rows
    assert (shrink, gone, first[shrink], second[shrink]) in rows
    assert {(r[1], r[3]) for r in rows if r[0] == empty} == {(f, second[empty]) for f in emptied}
    assert {r[1] for r in rows if r[0] == new_task and r[3] is None} == set(world.followers(new_task))
    assert [row for row in rows if row[0] == forbidden] == forbidden_before  # an error changes nothing
    first_seen = dict(loader.query(f"select task_id, first_ok_at from {DATASET}.task_first_seen"))
    assert first_seen[grow] == first[grow] and first_seen[new_task] == second[new_task]
    assert forbidden in first_seen and len(first_seen) == len(ids) + 1
    assert_open_intervals_match_current(loader)

    gone_user = world.user(gone).index
    world.add_follower(shrink, gone_user)  # re-follow: a new interval beside the closed one
    loader.run([shrink])
    third = fetched_at(loader, shrink)
    intervals = [(r[2], r[3]) for r in history(loader) if r[0] == shrink and r[1] == gone]
    assert intervals == [(first[shrink], second[shrink]), (third, None)]
    assert_open_intervals_match_current(loader)


@on_every_destination
def test_same_input_twice_changes_no_history(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    loader.run(ids)
    before = history(loader)
    loader.run(ids)
    assert history(loader) == before
    applied = loader.query(f"select count(*) from {DATASET}._feishu_history_loads")
    loads = loader.query(f"select count(*) from {DATASET}._dlt_loads where status = 0")
    assert applied == loads
