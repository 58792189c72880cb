"""End to end: the pipeline pages the simulator over HTTP and the DuckDB tables hold the truth."""

from __future__ import annotations

import pytest

from feishu_followers.run import run
from feishu_simulator import World

from .conftest import DATASET, Loader, on_every_destination, truth


def many_follower_task(world: World, minimum: int = 51) -> str:
    return next(t for t in world.task_ids() if len(world.followers(t)) >= minimum)


@on_every_destination
def test_loads_every_follower_of_every_task(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    result = loader.run(ids)
    assert loader.followers() == truth(world, ids)
    assert set(loader.statuses().values()) == {"ok"}
    assert result.stats.tasks_by_status == {"ok": len(ids)}
    assert result.stats.followers == sum(len(world.followers(t)) for t in ids)
    # a task with more than 50 followers took several pages
    big = many_follower_task(world)
    pages = loader.query(
        f"select pages, follower_count from {DATASET}.task_fetch_status where task_id = '{big}'"
    )
    assert pages == [(-(-len(world.followers(big)) // 50), len(world.followers(big)))]
    # dlt's columns are there
    assert loader.query(
        f"select count(*) from {DATASET}.task_followers where _dlt_load_id is null or _dlt_id is null"
    ) == [(0,)]


@on_every_destination
def test_id_list_lands_in_child_table_linked_to_its_row(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    loader.run(ids)
    expected = {
        (task_id, follower, idx, value)
        for task_id in ids
        for follower, values in world.follower_id_lists(task_id).items()
        for idx, value in enumerate(values)
    }
    assert expected, "the simulated tenant should have some id_list values"
    rows = loader.query(
        f"""select c.task_id, p.follower_id, c._dlt_list_idx, c.value
            from {DATASET}.task_followers__id_list c
            join {DATASET}.task_followers p on p._dlt_id = c._dlt_parent_id"""
    )
    assert set(rows) == expected
    assert loader.query(f"select count(*) from {DATASET}.task_followers__id_list") == [(len(expected),)]


@pytest.mark.parametrize("user_id_type", ["open_id", "union_id", "user_id"])
def test_each_user_id_type(loader: Loader, world: World, user_id_type: str) -> None:
    ids = world.task_ids()[:15] + [many_follower_task(world)]
    loader.run(ids, user_id_type=user_id_type)
    assert loader.followers() == truth(world, ids, user_id_type)
    assert loader.query(f"select distinct user_id_type from {DATASET}.task_followers") == [(user_id_type,)]


def test_duplicated_and_malformed_ids(loader: Loader, world: World) -> None:
    task = world.task_ids()[3]
    loader.sim.reset_stats()
    result = loader.run(
        [task, task.upper(), f"  {task} ", "not-a-task", "../../auth/v3/tenant_access_token/internal"]
    )
    stats = loader.sim.stats.as_dict()
    pages = max(1, -(-len(world.followers(task)) // 50))
    assert stats["by_endpoint"].get("followers") == pages, stats["by_endpoint"]  # fetched once
    assert loader.statuses() == {
        task: "ok",
        "not-a-task": "invalid_task",
        "../../auth/v3/tenant_access_token/internal": "invalid_task",
    }
    assert result.stats.tasks_by_status == {"ok": 1, "invalid_task": 2}


def test_rerun_of_same_input_gives_same_tables(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    loader.run(ids)
    first = loader.query(f"select task_id, follower_id, _dlt_id from {DATASET}.task_followers order by all")
    first_children = loader.query(
        f"select _dlt_parent_id, _dlt_list_idx, value from {DATASET}.task_followers__id_list order by all"
    )
    loader.run(ids)
    assert (
        loader.query(f"select task_id, follower_id, _dlt_id from {DATASET}.task_followers order by all")
        == first
    )
    assert (
        loader.query(
            f"select _dlt_parent_id, _dlt_list_idx, value from {DATASET}.task_followers__id_list order by all"
        )
        == first_children
    )
    assert loader.query(f"select count(*), count(distinct task_id) from {DATASET}.task_fetch_status") == [
        (len(ids), len(ids))
    ]


@on_every_destination
def test_follow_unfollow_all_removed_new_task_between_runs(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    loader.run(ids)
    grow, shrink, empty, untouched = [t for t in ids if len(world.followers(t)) >= 2][:4]
    world.add_follower(grow)
    world.remove_follower(shrink, world.followers(shrink)[0])
    world.remove_all_followers(empty)
    new_task = world.add_task(followers=4)
    before_untouched = loader.followers()[untouched]
    world.add_follower(untouched)  # changed in Feishu, but not fetched in this run
    second = [grow, shrink, empty, new_task]
    loader.run(second)
    current = loader.followers()
    for task_id in (grow, shrink, new_task):
        assert current[task_id] == set(world.followers(task_id))
    assert empty not in current
    assert current[untouched] == before_untouched
    assert loader.query(
        f"select follower_count from {DATASET}.task_fetch_status where task_id = '{empty}'"
    ) == [(0,)]


def test_id_list_removed_in_feishu_disappears(loader: Loader, world: World) -> None:
    task = next(t for t in world.task_ids() if world.follower_id_lists(t))
    loader.run([task])
    assert loader.query(
        f"select count(*) from {DATASET}.task_followers__id_list where task_id = '{task}'"
    ) != [(0,)]
    world.remove_all_followers(task)
    loader.run([task])
    assert loader.query(
        f"select count(*) from {DATASET}.task_followers__id_list where task_id = '{task}'"
    ) == [(0,)]


def test_discover_loads_tasks_table(loader: Loader, world: World) -> None:
    extra = world.add_task(followers=2)
    result = loader.run([], discover=True)
    ids = world.task_ids()
    assert extra in ids
    assert loader.followers() == truth(world, ids)
    rows = dict(loader.query(f"select id, complete_time from {DATASET}.tasks"))
    assert set(rows) == set(ids)
    for task_id in ids:
        raw = world.task(task_id)["complete_time"]
        assert (rows[task_id] is None) == (raw == "0")
        if rows[task_id] is not None:
            assert int(rows[task_id].timestamp()) == int(raw)
    kinds = loader.query(
        "select data_type from information_schema.columns "
        f"where table_schema = '{DATASET}' and table_name = 'tasks' and column_name = 'create_time'"
    )
    assert kinds == [("TIMESTAMP WITH TIME ZONE",)]
    assert result.stats.tasks_by_status == {"ok": len(ids)}


def test_a_big_run_is_loaded_in_parts_with_the_same_result(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    world_rows = sum(len(world.followers(t)) + 1 for t in ids)
    options = loader.options(ids)
    options.rows_per_load = 150  # a runner feature: a plain pipeline.run loads everything at once
    result = run(options)
    assert len(result.load_ids) >= world_rows // 150 // 2, result.load_ids  # several loads
    assert loader.followers() == truth(world, ids)
    assert loader.query(f"select count(*) from {DATASET}.task_fetch_status") == [(len(ids),)]
    applied = loader.query(f"select count(*) from {DATASET}._feishu_history_loads")
    assert applied == [(len(result.load_ids),)]
    open_intervals = loader.query(
        f"select count(*) from {DATASET}.task_follower_history where valid_to is null"
    )
    assert open_intervals == loader.query(f"select count(*) from {DATASET}.task_followers")


def test_discover_keeps_the_listed_follower_arrays_out_of_tasks(loader: Loader, world: World) -> None:
    """The follower relation lives in task_followers: a listed task's ``followers`` array is not
    loaded a second time (``tasks__followers`` held every follow again, and needed gigabytes)."""
    big = world.add_task(followers=120)
    assert len(world.task(big)["followers"]) == 120  # the listing does carry the array
    loader.run([], discover=True)
    tables = {
        name
        for (name,) in loader.query(
            f"select table_name from information_schema.tables where table_schema = '{DATASET}'"
        )
    }
    assert "tasks" in tables and "tasks__followers" not in tables
    assert "tasks__collaborators" in tables  # the other array has no home elsewhere: kept
    columns = {
        name
        for (name,) in loader.query(
            "select column_name from information_schema.columns "
            f"where table_schema = '{DATASET}' and table_name = 'tasks'"
        )
    }
    assert not {name for name in columns if name.startswith("followers")}, columns
    assert loader.followers()[big] == set(world.followers(big))
