"""Task lists and task v2: find the tasks through the lists, read followers through v1, v2 or both."""

from __future__ import annotations

import pytest

from feishu_followers.run import run
from feishu_simulator import World
from feishu_simulator.faults import BODY_KINDS
from feishu_tasks.errors import FatalError

from .conftest import DATASET, Loader, cli, on_every_destination, sim_env, truth

UNKNOWN_LIST = "00000000-0000-4000-8000-00000000abcd"


def readable_lists(world: World) -> list[str]:
    return world.find_tasklists(app_member=True, forbidden=False)


def list_tasks(loader: Loader) -> dict[str, set[str]]:
    rows = loader.query(f"select tasklist_guid, task_guid from {DATASET}.tasklist_tasks")
    out: dict[str, set[str]] = {}
    for guid, task in rows:
        out.setdefault(guid, set()).add(task)
    return out


def list_statuses(loader: Loader) -> dict[str, str]:
    return dict(loader.query(f"select tasklist_guid, status from {DATASET}.tasklist_fetch_status"))


def tasks_in(world: World, guids: list[str], completed: bool | None = None) -> list[str]:
    return list(dict.fromkeys(t for g in guids for t in world.tasklist_tasks(g, completed)))


def v1_readable(world: World, task_ids: list[str]) -> list[str]:
    return [t for t in task_ids if t not in world.forbidden and t not in world.v2_only]


def test_all_tasklists_loads_the_lists_their_tasks_and_followers(loader: Loader, world: World) -> None:
    result = loader.run(all_tasklists=True)
    visible, readable = world.visible_tasklists(), readable_lists(world)
    forbidden = world.find_tasklists(app_member=True, forbidden=True)
    assert forbidden and set(readable) < set(visible)
    rows = {
        r[0]: r[1:]
        for r in loader.query(f"select guid, name, archived_at, created_at from {DATASET}.tasklists")
    }
    assert set(rows) == set(visible)  # lists the app is not a member of stay out of sight
    for guid in visible:
        tasklist = world.tasklist(guid)
        name, archived_at, created_at = rows[guid]
        assert name == tasklist["name"]
        assert int(created_at.timestamp() * 1000) == int(tasklist["created_at"])
        assert (archived_at is None) == (tasklist["archive_msec"] == "0")
    assert list_statuses(loader) == {g: "ok" for g in readable} | {g: "no_permission" for g in forbidden}
    assert list_tasks(loader) == {
        g: set(world.tasklist_tasks(g)) for g in readable if world.tasklist_tasks(g)
    }
    listed = tasks_in(world, readable)
    assert loader.followers() == truth(world, v1_readable(world, listed))
    assert result.stats.tasks_by_status.get("ok") == len(v1_readable(world, listed))


def test_a_task_moved_out_of_a_list_leaves_it(loader: Loader, world: World) -> None:
    guid = max(readable_lists(world), key=lambda g: len(world.tasklist_tasks(g)))
    emptied = next(g for g in readable_lists(world) if g != guid and world.tasklist_tasks(g))
    loader.run(tasklists=[guid, emptied])
    moved = world.tasklist_tasks(guid)[0]
    world.remove_task_from_tasklist(guid, moved)
    for task_id in world.tasklist_tasks(emptied):
        world.remove_task_from_tasklist(emptied, task_id)
    loader.run(tasklists=[guid, emptied])
    current = list_tasks(loader)
    assert moved not in current[guid] and current[guid] == set(world.tasklist_tasks(guid))
    assert emptied not in current  # an emptied list has no rows
    assert loader.query(
        f"select task_count from {DATASET}.tasklist_fetch_status where tasklist_guid = '{emptied}'"
    ) == [(0,)]


def test_lists_that_cannot_be_read_are_recorded_and_the_run_goes_on(loader: Loader, world: World) -> None:
    readable = readable_lists(world)[0]
    forbidden = world.find_tasklists(app_member=True, forbidden=True)[0]
    foreign = world.find_tasklists(app_member=False)[0]  # exists, the app is not a member
    loader.run(tasklists=[readable, forbidden, foreign, UNKNOWN_LIST, "not-a-list"])
    statuses = list_statuses(loader)
    assert statuses == {
        readable: "ok",
        forbidden: "no_permission",
        foreign: "no_permission",
        UNKNOWN_LIST: "not_found",
        "not-a-list": "not_found",
    }
    assert set(list_tasks(loader)) == {readable}
    errors = dict(loader.query(f"select tasklist_guid, error_code from {DATASET}.tasklist_fetch_status"))
    assert errors[forbidden] == 1470403 and errors[UNKNOWN_LIST] == 1470404
    kept = dict(loader.query(f"select tasklist_guid, last_ok_at from {DATASET}.tasklist_fetch_status"))
    world.set_tasklist_forbidden(readable, True)  # a list that was read before and is not now
    loader.run(tasklists=[readable, readable_lists(world)[0]])
    assert list_statuses(loader)[readable] == "no_permission"
    assert readable in list_tasks(loader)  # an error deletes nothing
    assert (
        dict(loader.query(f"select tasklist_guid, last_ok_at from {DATASET}.tasklist_fetch_status"))[readable]
        == kept[readable]
    )


def test_nothing_readable_stops_the_run_with_one_line(loader: Loader, world: World) -> None:
    forbidden = world.find_tasklists(app_member=True, forbidden=True)
    with pytest.raises(FatalError, match=r"none of the \d+ task lists could be read .*no_permission"):
        loader.run(tasklists=[*forbidden, UNKNOWN_LIST])


def test_completed_filter(loader: Loader, world: World) -> None:
    guids = readable_lists(world)
    loader.run(tasklists=guids, tasklist_completed=False)
    expected = {g: set(world.tasklist_tasks(g, False)) for g in guids if world.tasklist_tasks(g, False)}
    assert list_tasks(loader) == expected
    assert loader.query(f"select count(*) from {DATASET}.tasklist_tasks where completed_at is not null") == [
        (0,)
    ]


def test_followers_through_v2_one_request_per_task(loader: Loader, world: World) -> None:
    guids = readable_lists(world)
    listed = tasks_in(world, guids)
    loader.sim.reset_stats()
    loader.run(tasklists=guids, followers_api="v2", user_id_type="union_id")
    calls = loader.sim.stats.as_dict()["by_endpoint"]
    assert calls.get("v2_get_task") == len(listed) and not calls.get("followers")
    readable = [t for t in listed if t not in world.forbidden]
    rows = loader.query(f"select task_id, follower_id, member_type from {DATASET}.task_followers")
    got: dict[str, set[tuple[str, str]]] = {}
    for task_id, follower_id, member_type in rows:
        got.setdefault(task_id, set()).add((follower_id, member_type))
    expected = {t: set(world.v2_followers(t, "union_id")) for t in readable if world.v2_followers(t)}
    assert got == expected
    assert any(kind == "app" for pairs in got.values() for _, kind in pairs), "some apps follow tasks"
    apis = dict(loader.query(f"select task_id, api from {DATASET}.task_fetch_status"))
    assert set(apis.values()) == {"v2"}
    statuses = loader.statuses()
    assert {t for t, s in statuses.items() if s == "no_permission"} == {
        t for t in listed if t in world.forbidden
    }


def test_auto_tries_v2_once_for_a_list_task_that_v1_does_not_know(loader: Loader, world: World) -> None:
    guid = readable_lists(world)[0]
    listed = world.tasklist_tasks(guid)
    v2_only = [t for t in listed if t not in world.forbidden][:3]
    for task_id in v2_only:
        world.set_v2_only(task_id)
    outside = next(t for t in world.task_ids() if not world.tasklists_of(t))
    world.set_v2_only(outside)
    loader.sim.reset_stats()
    loader.run([outside], tasklists=[guid], followers_api="auto")
    rows = dict(
        loader.query(f"select task_id, status || '/' || coalesce(api, '') from {DATASET}.task_fetch_status")
    )
    assert {rows[t] for t in v2_only} == {"ok/v2"}
    assert rows[outside] == "invalid_task/v1"  # given directly, not from a list: no v2 try
    assert all(rows[t] == "ok/v1" for t in listed if t not in v2_only and t not in world.forbidden)
    assert loader.sim.stats.as_dict()["by_endpoint"].get("v2_get_task") == len(v2_only)
    for task_id in v2_only:
        assert loader.followers().get(task_id, set()) == {i for i, _ in world.v2_followers(task_id)}


def test_numeric_v2_timestamps_load_the_same(loader: Loader, world: World) -> None:
    guids = readable_lists(world)[:3]
    loader.run(tasklists=guids)
    before = loader.query(
        f"select * exclude (_dlt_load_id, _dlt_id) from {DATASET}.tasklist_tasks order by all"
    )
    loader.sim.faults.v2_numeric_timestamps = True
    loader.sim.faults.v2_string_counts = True
    loader.run(tasklists=guids)
    after = loader.query(
        f"select * exclude (_dlt_load_id, _dlt_id) from {DATASET}.tasklist_tasks order by all"
    )
    assert before == after and before


def test_each_endpoint_is_paced_against_its_own_quota(loader: Loader, world: World) -> None:
    """Feishu counts every endpoint on its own: paced per endpoint, none is exceeded.

    (That they are separate budgets, not one, is test_v2_units.py's pacing test: a rate check
    here would depend on how the listing and the fetch overlap on a busy machine.)"""
    ours = {
        "get_task_v2": "v2_get_task",
        "tasklist_tasks_v2": "v2_tasklist_tasks",
        "tasklists_v2": "v2_tasklists",
    }
    loader.sim.faults.quota_per_endpoint = {simulated: (8, None) for simulated in ours.values()}
    guids = readable_lists(world)
    listed = tasks_in(world, guids)
    loader.sim.reset_stats()
    result = loader.run(
        tasklists=guids,
        followers_api="v2",
        endpoint_limits={name: [8, None] for name in ours},
        max_rps=0,
    )
    stats = loader.sim.stats.as_dict()
    # Paced on send times; the simulator counts arrivals. On a loaded machine one arrival can be
    # late enough to meet the next window's edge (one 429, waited out). Unpaced or paced as one
    # budget, dozens are refused.
    assert stats["rate_limited"] <= 1 and result.stats.rate_limited <= 1
    assert stats["by_endpoint"]["v2_get_task"] == len(listed) + stats["rate_limited"]  # a 429 is retried


@on_every_destination
def test_cli_two_tasklists_through_v2_and_auto(loader: Loader, world: World, tmp_path) -> None:
    """``run --tasklist G1 --tasklist G2 --followers-api v2``, then ``auto`` on the open tasks only."""
    first, second = readable_lists(world)[:2]
    env = sim_env(loader.sim, **loader.cli_env())
    args = ["run", *loader.cli_args(), "--tasklist", first, "--tasklist", second]
    done = cli([*args, "--followers-api", "v2"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    listed = tasks_in(world, [first, second])
    assert loader.followers() == v2_truth(world, listed) == open_intervals(loader)
    assert list_tasks(loader) == {
        g: set(world.tasklist_tasks(g)) for g in (first, second) if world.tasklist_tasks(g)
    }
    done = cli([*args, "--tasklist-completed", "false", "--followers-api", "auto"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert list_tasks(loader) == {
        g: set(world.tasklist_tasks(g, False)) for g in (first, second) if world.tasklist_tasks(g, False)
    }
    options = loader.options(all_tasklists=True)
    assert run(options).stats.tasks_by_status


def test_bad_answers_on_every_v2_endpoint_are_retried_to_an_exact_load(loader: Loader, world: World) -> None:
    guids = readable_lists(world)
    listed = tasks_in(world, guids)
    loader.sim.faults.bad_answer_fraction = 0.3  # lists, a list's tasks and get task alike
    loader.sim.faults.random_bad_kinds = [k for k in BODY_KINDS if k != "trickle"]  # all spoil a v2 answer
    result = loader.run(all_tasklists=True, followers_api="v2", max_attempts=12, backoff_base_seconds=0.01)
    assert result.stats.listing_problems == [] and result.stats.retries > 5
    assert list_statuses(loader) == {g: "ok" for g in guids} | {
        g: "no_permission" for g in world.find_tasklists(app_member=True, forbidden=True)
    }
    assert list_tasks(loader) == {g: set(world.tasklist_tasks(g)) for g in guids if world.tasklist_tasks(g)}
    assert loader.followers() == v2_truth(world, listed)


def v2_truth(world: World, task_ids: list[str]) -> dict[str, set[str]]:
    """The followers v2 shows (users and apps) of the readable tasks that have any."""
    readable = [t for t in task_ids if t not in world.forbidden]
    return {t: {f for f, _ in world.v2_followers(t)} for t in readable if world.v2_followers(t)}


def open_intervals(loader: Loader) -> dict[str, set[str]]:
    rows = loader.query(
        f"select task_id, follower_id from {DATASET}.task_follower_history where valid_to is null"
    )
    out: dict[str, set[str]] = {}
    for task_id, follower_id in rows:
        out.setdefault(task_id, set()).add(follower_id)
    return out


def closed_follows(loader: Loader, task_id: str) -> list[tuple]:
    return loader.query(
        f"select follower_id from {DATASET}.task_follower_history "
        "where task_id = %s and valid_to is not null",
        task_id,
    )


@on_every_destination
def test_v2_follows_unfollows_list_moves_and_history_then_v1(loader: Loader, world: World) -> None:
    """Through --all-tasklists and v2, then v1 on the same tasks: exact sets, history after each run."""
    guids = readable_lists(world)
    listed = tasks_in(world, guids)
    loader.run(all_tasklists=True, followers_api="v2")
    assert loader.followers() == v2_truth(world, listed) == open_intervals(loader)

    with_apps = next(
        t for t in listed if t not in world.forbidden and any(k == "app" for _, k in world.v2_followers(t))
    )
    users = [
        t for t in listed if t not in world.forbidden and len(world.followers(t)) >= 2 and t != with_apps
    ]
    grow, shrink, empty = users[:3]
    added_app = world.add_app_follower(grow)
    added_user = world.add_follower(grow)
    gone = world.followers(shrink)[0]
    world.remove_follower(shrink, gone)
    world.remove_all_followers(empty)  # its user followers; app followers (if any) stay
    source = next(g for g in guids if grow in world.tasklist_tasks(g))
    target = next(g for g in guids if grow not in world.tasklist_tasks(g))
    world.remove_task_from_tasklist(source, grow)
    world.add_task_to_tasklist(target, grow)  # moved: it leaves one list and joins another
    loader.run(all_tasklists=True, followers_api="v2")
    listed = tasks_in(world, guids)
    assert loader.followers() == v2_truth(world, listed) == open_intervals(loader)
    assert {added_app, added_user} <= loader.followers()[grow]
    assert grow not in list_tasks(loader).get(source, set()) and grow in list_tasks(loader)[target]
    assert closed_follows(loader, shrink) == [(gone,)]
    member_types = dict(
        loader.query(
            f"select follower_id, member_type from {DATASET}.task_followers where task_id = '{grow}'"
        )
    )
    assert member_types[added_app] == "app" and member_types[added_user] == "user"

    loader.run(listed, followers_api="v1")  # v1 shows no app followers: their follows close
    v1_sets = truth(world, [t for t in listed if t not in world.forbidden and t not in world.v2_only])
    assert loader.followers() == v1_sets == open_intervals(loader)
    apis = dict(loader.query(f"select task_id, api from {DATASET}.task_fetch_status where status = 'ok'"))
    assert set(apis.values()) == {"v1"}
    assert (added_app,) in closed_follows(loader, grow)


def test_an_app_member_of_no_list_stops_the_run_with_one_line(loader: Loader, world: World, tmp_path) -> None:
    """Issue 21, 6: it ran every hour with exit 0 and "loaded 0 task(s)"."""
    for guid in world.find_tasklists(app_member=True):
        world.set_tasklist_app_role(guid, None)
    done = cli(["run", "--all-tasklists", *loader.cli_args()], tmp_path, sim_env(loader.sim))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "feishu-followers: error: the credentials are a member of no task list (--all-tasklists found "
        "none); add the app as a member (viewer is enough) of the lists to read"
    ]
    ids = world.task_ids()[:2]  # with other input, the run goes on
    given = [arg for task in ids for arg in ("--task-id", task)]
    done = cli(["run", "--all-tasklists", *given, *loader.cli_args()], tmp_path, sim_env(loader.sim))
    assert done.returncode == 0, done.stderr
    assert loader.followers() == truth(world, ids)


@on_every_destination
def test_a_list_no_longer_visible_says_so_and_its_tasks_are_read_again(loader: Loader, world: World) -> None:
    """Issue 21, 6: a list the app left kept ``ok`` and its old ``fetched_at``, its tasks never read again."""
    loader.run(all_tasklists=True)
    gone = max(readable_lists(world), key=lambda g: len(world.tasklist_tasks(g)))
    others = {t for g in readable_lists(world) if g != gone for t in world.tasklist_tasks(g)}
    only_there = [t for t in world.tasklist_tasks(gone) if t not in others and world.followers(t)]
    assert only_there, "the world has a list with tasks of its own"
    before = dict(loader.query(f"select tasklist_guid, last_ok_at from {DATASET}.tasklist_fetch_status"))
    task_rows_before = list_tasks(loader)[gone]
    fetched_before = dict(loader.query(f"select task_id, fetched_at from {DATASET}.task_fetch_status"))
    world.set_tasklist_app_role(gone, None)  # the app is removed from the list
    unfollowed = only_there[0]
    world.remove_follower(unfollowed, world.followers(unfollowed)[0])

    result = loader.run(all_tasklists=True)
    assert list_statuses(loader)[gone] == "not_visible"
    assert result.stats.tasklists_by_status.get("not_visible") == 1
    row = loader.query(
        f"select last_ok_at, error_msg from {DATASET}.tasklist_fetch_status where tasklist_guid = '{gone}'"
    )
    assert row[0][0] == before[gone] and "no longer among the task lists" in row[0][1]
    assert list_tasks(loader)[gone] == task_rows_before  # a list that cannot be read keeps its rows
    fetched = dict(loader.query(f"select task_id, fetched_at from {DATASET}.task_fetch_status"))
    assert all(fetched[t] > fetched_before[t] for t in only_there)  # read again, each with its status
    statuses = loader.statuses()
    current = loader.followers()
    for task in only_there:
        if statuses[task] == "ok":  # the app can still read it: exact
            assert current.get(task, set()) == set(world.followers(task))
        else:  # it cannot: the status says so and the rows stay (an error deletes nothing)
            assert statuses[task] == "no_permission" and current[task]
