"""Follow history: intervals open and close with what each run observed."""

from __future__ import annotations

import pytest

from feishu_followers.history import apply_history
from feishu_followers.run import make_pipeline
from feishu_simulator import World
from feishu_tasks.errors import FatalError

from .conftest import DATASET, Loader, on_every_destination, truth


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


@on_every_destination
def test_a_failing_history_statement_rolls_back_and_its_own_error_propagates(
    loader: Loader, world: World
) -> None:
    """A statement that fails inside the history transaction (here a NOT NULL violation, as a
    full disk would in its place) undoes the statements before it, and the error the user sees
    is that one, never a failed rollback; once repaired, the load is applied exactly once."""
    ids = world.task_ids()[:10]
    loader.run(ids)
    before = history(loader)
    grown = next(t for t in ids if world.followers(t))
    added = world.add_follower(grown)
    new_task = world.add_task(followers=2)
    first_seen = f"{DATASET}.task_first_seen"
    loader.execute(f"alter table {first_seen} rename to task_first_seen_saved")
    loader.execute(
        f"create table {first_seen} (task_id varchar, first_ok_at timestamptz, note varchar not null)"
    )

    with pytest.raises(FatalError) as failure:
        loader.run([*ids, new_task])
    assert "note" in str(failure.value) and "transaction" not in str(failure.value), failure.value
    assert history(loader) == before  # the interval opened before the failure was rolled back
    applied = loader.query(f"select count(*) from {DATASET}._feishu_history_loads")
    assert applied == [(1,)]

    loader.execute(f"drop table {first_seen}")
    loader.execute(f"alter table {first_seen}_saved rename to task_first_seen")
    assert apply_history(make_pipeline(loader.options(), progress=False)) == 1
    rows = history(loader)
    assert (grown, added, fetched_at(loader, grown), None) in rows
    assert {r[1] for r in rows if r[0] == new_task} == set(world.followers(new_task))
    assert_open_intervals_match_current(loader)
    assert apply_history(make_pipeline(loader.options(), progress=False)) == 0


@on_every_destination
def test_rows_a_resumed_load_wrote_twice_are_collapsed_before_the_history(
    loader: Loader, world: World
) -> None:
    """dlt can copy a staging file twice when it resumes a package (see history.py): the rows of
    that load come out once, and its history applies."""
    ids = world.task_ids()
    loader.run(ids)
    (load_id,) = loader.query(f"select distinct _dlt_load_id from {DATASET}.task_followers")[0]
    for table in ("task_followers", "task_followers__id_list"):
        loader.execute(f"insert into {DATASET}.{table} select * from {DATASET}.{table}")
    for table in ("task_follower_history", "task_first_seen", "_feishu_history_loads"):
        loader.execute(f"delete from {DATASET}.{table}")  # as if the history of that load were still due
    assert loader.query(f"select count(*) - count(distinct _dlt_id) from {DATASET}.task_followers")[0][0] > 0
    apply_history(make_pipeline(loader.options(ids), progress=False))
    for table in ("task_followers", "task_followers__id_list"):
        assert loader.query(f"select count(*) - count(distinct _dlt_id) from {DATASET}.{table}") == [(0,)]
    assert loader.followers() == truth(world, ids)
    assert_open_intervals_match_current(loader)
    assert loader.query(f"select load_id from {DATASET}._feishu_history_loads") == [(load_id,)]
