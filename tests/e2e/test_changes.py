"""Change capture, the loading side: ``run --changed`` reads what the journal marks, and only that.

The journal is written here as ``listen`` writes it (the receiver has its own tests); the run
reads the simulator over HTTP and the assertions are on the loaded tables.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from feishu_followers.options import RunOptions
from feishu_followers.run import RunResult, run
from feishu_simulator import World
from feishu_tasks.journal import Journal, RecordedEvent, TaskChange

from .conftest import DATASET, Loader, on_every_destination, truth


def mark(journal: Path, *changes: TaskChange, prefix: str = "ev") -> None:
    with Journal(journal) as j:
        j.record([RecordedEvent(f"{prefix}-{n}-{c.task_id}", (c,)) for n, c in enumerate(changes)])


def changed_run(
    loader: Loader, journal: Path, *task_ids: str, max_requests: int | None = None, **source_args: object
) -> RunResult:
    options: RunOptions = loader.options(list(task_ids), **source_args)
    options.changed, options.journal, options.max_requests = True, str(journal), max_requests
    return run(options)


def follower_requests(loader: Loader) -> int:
    return int(loader.sim.stats.as_dict()["by_endpoint"].get("followers", 0))


def followers_event(task_id: str, at: datetime, api: str = "v1") -> TaskChange:
    ms = int(at.timestamp() * 1000)
    return TaskChange(task_id, api, ("task_followers_update",), ms)  # type: ignore[arg-type]


@on_every_destination
def test_a_changed_run_reads_exactly_the_marked_tasks_then_nothing(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()
    loader.run(ids)  # the first full load
    journal = tmp_path / "journal.sqlite"
    changed = ids[:3]
    for task_id in changed:
        world.add_follower(task_id)
    mark(journal, *(followers_event(t, datetime.now(UTC)) for t in changed))
    loader.sim.reset_stats()
    result = changed_run(loader, journal)
    pages = sum(max(1, -(-len(world.followers(t)) // 50)) for t in changed)
    assert follower_requests(loader) == pages and result.stats.tasks_done == 3
    assert loader.followers() == truth(world, ids)
    loader.sim.reset_stats()
    changed_run(loader, journal)  # the position moved with the load: nothing new
    assert follower_requests(loader) == 0
    with Journal(journal) as j:
        assert j.changes_after(0) == []  # acknowledged by the second run, and pruned


def test_history_is_dated_by_the_event_not_by_the_load(loader: Loader, world: World, tmp_path: Path) -> None:
    task = world.task_ids()[5]
    loader.run([task])
    (first_fetch,) = loader.query(
        f"select fetched_at from {DATASET}.task_fetch_status where task_id = %s", task
    )[0]
    now = datetime.now(UTC)  # after the first read: an event never precedes what was read
    event_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # events carry milliseconds
    new = world.add_follower(task)
    journal = tmp_path / "journal.sqlite"
    mark(journal, followers_event(task, event_at))
    changed_run(loader, journal)
    (valid_from,) = loader.query(
        f"select valid_from from {DATASET}.task_follower_history where task_id = %s and follower_id = %s",
        task,
        new,
    )[0]
    assert valid_from == event_at
    # a late event from before the task's previous observation cannot date a change before it
    world.remove_follower(task, new)
    mark(journal, followers_event(task, first_fetch - timedelta(hours=1)), prefix="late")
    changed_run(loader, journal)
    (valid_to,) = loader.query(
        f"select valid_to from {DATASET}.task_follower_history where task_id = %s and follower_id = %s",
        task,
        new,
    )[0]
    assert valid_to >= valid_from


def test_tasks_a_request_cap_leaves_are_marked_again_for_the_next_run(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()[:6]
    journal = tmp_path / "journal.sqlite"
    mark(journal, *(followers_event(t, datetime.now(UTC)) for t in ids))
    first = changed_run(loader, journal, max_requests=2)
    assert first.stats.tasks_done < len(ids)
    changed_run(loader, journal)
    assert set(loader.statuses()) == set(ids)
    assert loader.followers() == truth(world, ids)


def test_a_v2_change_is_read_through_v2(loader: Loader, world: World, tmp_path: Path) -> None:
    task = world.task_ids()[7]
    app = world.add_app_follower(task)
    journal = tmp_path / "journal.sqlite"
    mark(journal, followers_event(task, datetime.now(UTC), api="v2"))
    changed_run(loader, journal)
    assert loader.query(f"select api from {DATASET}.task_fetch_status where task_id = %s", task) == [("v2",)]
    assert app in loader.followers()[task]  # only v2 shows app followers


@on_every_destination
def test_a_deleted_task_leaves_the_tables_and_its_intervals_close_at_the_event(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    task = next(t for t in world.task_ids() if len(world.followers(t)) >= 2)
    loader.run([task])
    world.delete_task(task)
    now = datetime.now(UTC)  # after the first run's read: an event never precedes what was read
    deleted_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # events carry milliseconds
    journal = tmp_path / "journal.sqlite"
    event = TaskChange(task, "v2", ("task_deleted",), int(deleted_at.timestamp() * 1000), deleted=True)
    mark(journal, event)
    changed_run(loader, journal)
    assert task not in loader.followers()
    assert loader.statuses()[task] == "deleted"
    closed = loader.query(
        f"select distinct valid_to from {DATASET}.task_follower_history where task_id = %s", task
    )
    assert closed == [(deleted_at,)]


def test_a_deletion_the_api_does_not_confirm_is_not_believed(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    """Events arrive out of order and late: the task is read, and what the API says stands."""
    task = world.task_ids()[9]
    journal = tmp_path / "journal.sqlite"
    mark(journal, TaskChange(task, "v1", ("task_deleted",), None, deleted=True))
    changed_run(loader, journal)
    assert loader.statuses()[task] == "ok"
    assert loader.followers().get(task, set()) == set(world.followers(task))


@on_every_destination
def test_a_changed_run_knows_its_marked_tasks_past_success_and_size(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    """A micro-batch reads what the destination knows of the tasks it marks only (known_tasks'
    ``only``): a marked task that fails keeps its last success, and a request cap admits whole
    tasks by the pages they took last time, as a full run does."""
    ids = world.task_ids()
    big = next(t for t in ids if len(world.followers(t)) > 2 * 50)  # three pages or more
    failing = next(t for t in ids if t != big and world.followers(t))
    small = next(t for t in ids if t not in (big, failing) and world.followers(t))
    loader.run(ids)  # every task known; the marked ones are among many
    status_sql = f"select status, last_ok_at from {DATASET}.task_fetch_status where task_id = %s"
    ((_, first_ok),) = loader.query(status_sql, failing)
    loader.sim.faults.always_fail_tasks = {failing}
    journal = tmp_path / "journal.sqlite"
    mark(journal, followers_event(failing, datetime.now(UTC)))
    changed_run(loader, journal, max_attempts=2)
    assert loader.query(status_sql, failing) == [("failed", first_ok)]
    loader.sim.faults.always_fail_tasks = set()
    world.add_follower(big)
    world.add_follower(small)
    mark(
        journal,
        followers_event(small, datetime.now(UTC)),
        followers_event(big, datetime.now(UTC)),
        prefix="b",
    )
    loader.sim.reset_stats()
    first = changed_run(loader, journal, max_requests=2)  # the big task needs 3 pages or more
    # The small task (marked first) is admitted; the big one, known to need more than the request
    # left, waits whole for the next run: one request, not two and a big task cut at the cap.
    assert first.stats.tasks_done == 1 and follower_requests(loader) == 1
    changed_run(loader, journal)
    assert loader.followers() == {**loader.followers(), **truth(world, [big, small, failing])}
    assert {t: s for t, s in loader.statuses().items() if t in (big, small)} == {big: "ok", small: "ok"}
