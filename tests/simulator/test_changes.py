"""The change hook: every public mutator of a world notifies exactly one change, after the fact.

These are the world's own guarantees (the simulator's coming Feishu events subscribe to them);
what a mutation does to the HTTP answers is tested in test_simulator.py and test_simulator_v2.py.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from feishu_simulator import Change, ChangeKind, TaskNotFound, World

#: World's public methods that only read (everything else public must be in MUTATORS).
READS = {
    "convert_id",
    "created_ms",
    "display_id",
    "find_tasklists",
    "follower_id_lists",
    "follower_page",
    "followers",
    "generate",
    "get_task",
    "list_tasks",
    "subscribe",
    "task",
    "task_ids",
    "tasklist",
    "tasklist_guids",
    "tasklist_page",
    "tasklist_task_page",
    "tasklist_tasks",
    "tasklists_of",
    "token_user",
    "user",
    "v2_assignees",
    "v2_followers",
    "v2_task",
    "v2_task_answer",
    "visible_tasklists",
}


@dataclass
class Case:
    """One mutator: how to call it on a fresh world, and the change it must notify."""

    mutate: Callable[[World, dict[str, Any]], Any]
    kind: ChangeKind
    expect: dict[str, Any] = field(default_factory=dict)  # Change fields, as keys of the context


def context_of(world: World) -> dict[str, Any]:
    """Names the cases refer to (made before anyone listens).

    A task with user followers and an app follower, a list holding it, a readable list of the
    app without it, a user who is no member of that list, and an app not following the task.
    """
    task = next(t for t in world.task_ids() if world.followers(t) and world.tasklists_of(t))
    following_app = world.add_app_follower(task)
    readable = world.find_tasklists(app_member=True, forbidden=False, archived=False)
    other = next(g for g in readable if g not in world.tasklists_of(task))
    return {
        "task": task,
        "follower": world.followers(task)[0],
        "following_app": following_app,
        "free_app": next(a for a in world.app_names if a != following_app),
        "in_list": world.tasklists_of(task)[0],
        "other": other,
        "stranger": next(
            u for u in range(len(world.users)) if other not in world.find_tasklists(user_member=u)
        ),
    }


MUTATORS: dict[str, Case] = {
    "add_follower": Case(
        lambda w, c: w.add_follower(c["task"]), ChangeKind.FOLLOWER_ADDED, {"task_id": "task"}
    ),
    "remove_follower": Case(
        lambda w, c: w.remove_follower(c["task"], c["follower"]),
        ChangeKind.FOLLOWER_REMOVED,
        {"task_id": "task"},
    ),
    "remove_all_followers": Case(
        lambda w, c: w.remove_all_followers(c["task"]), ChangeKind.FOLLOWERS_CLEARED, {"task_id": "task"}
    ),
    "add_task": Case(lambda w, c: w.add_task(), ChangeKind.TASK_CREATED),
    "delete_task": Case(lambda w, c: w.delete_task(c["task"]), ChangeKind.TASK_DELETED, {"task_id": "task"}),
    "touch": Case(lambda w, c: w.touch(c["task"]), ChangeKind.TASK_UPDATED, {"task_id": "task"}),
    "set_forbidden": Case(
        lambda w, c: w.set_forbidden(c["task"]), ChangeKind.TASK_ACCESS_CHANGED, {"task_id": "task"}
    ),
    "set_v2_only": Case(
        lambda w, c: w.set_v2_only(c["task"]), ChangeKind.TASK_ACCESS_CHANGED, {"task_id": "task"}
    ),
    "add_app_follower": Case(
        lambda w, c: w.add_app_follower(c["task"], c["free_app"]),
        ChangeKind.FOLLOWER_ADDED,
        {"task_id": "task"},
    ),
    "remove_app_follower": Case(
        lambda w, c: w.remove_app_follower(c["task"], c["following_app"]),
        ChangeKind.FOLLOWER_REMOVED,
        {"task_id": "task"},
    ),
    "add_tasklist": Case(lambda w, c: w.add_tasklist(), ChangeKind.TASKLIST_CREATED),
    "remove_tasklist": Case(
        lambda w, c: w.remove_tasklist(c["in_list"]),
        ChangeKind.TASKLIST_DELETED,
        {"tasklist_guid": "in_list"},
    ),
    "add_task_to_tasklist": Case(
        lambda w, c: w.add_task_to_tasklist(c["other"], c["task"]),
        ChangeKind.TASK_ADDED_TO_TASKLIST,
        {"task_id": "task", "tasklist_guid": "other"},
    ),
    "remove_task_from_tasklist": Case(
        lambda w, c: w.remove_task_from_tasklist(c["in_list"], c["task"]),
        ChangeKind.TASK_REMOVED_FROM_TASKLIST,
        {"task_id": "task", "tasklist_guid": "in_list"},
    ),
    "archive_tasklist": Case(
        lambda w, c: w.archive_tasklist(c["other"]), ChangeKind.TASKLIST_UPDATED, {"tasklist_guid": "other"}
    ),
    "set_tasklist_forbidden": Case(
        lambda w, c: w.set_tasklist_forbidden(c["other"]),
        ChangeKind.TASKLIST_UPDATED,
        {"tasklist_guid": "other"},
    ),
    "set_tasklist_app_role": Case(
        lambda w, c: w.set_tasklist_app_role(c["other"], None),
        ChangeKind.TASKLIST_UPDATED,
        {"tasklist_guid": "other"},
    ),
    "set_tasklist_member": Case(
        lambda w, c: w.set_tasklist_member(c["other"], c["stranger"], "editor"),
        ChangeKind.TASKLIST_UPDATED,
        {"tasklist_guid": "other", "user_index": "stranger"},
    ),
    "bind_user_token": Case(lambda w, c: w.bind_user_token("u-someone", 3), ChangeKind.USER_TOKEN_BOUND),
}


def fresh_world() -> World:
    return World.generate(tasks=30, seed=5, users=40, app_followers=0.0)


def recording(world: World) -> list[Change]:
    changes: list[Change] = []
    world.subscribe(changes.append)
    return changes


def recording_with_lock_state(world: World) -> list[tuple[Change, bool]]:
    """Each change, and whether the world's lock was free when it was delivered."""
    heard: list[tuple[Change, bool]] = []
    world.subscribe(lambda change: heard.append((change, lock_is_free(world))))
    return heard


def test_every_public_mutator_has_a_case() -> None:
    public = {name for name, _ in inspect.getmembers(World, callable) if not name.startswith("_")}
    assert public - READS == set(MUTATORS), "a new mutator of World needs its case in MUTATORS"


@pytest.mark.parametrize("name", sorted(MUTATORS))
def test_each_mutator_notifies_exactly_one_change_of_its_kind(name: str) -> None:
    case = MUTATORS[name]
    world = fresh_world()
    context = context_of(world)
    heard = recording_with_lock_state(world)
    before_ms = int(time.time() * 1000)
    case.mutate(world, context)
    after_ms = int(time.time() * 1000)
    assert [c.kind for c, _ in heard] == [case.kind]
    change, lock_was_free = heard[0]
    assert lock_was_free, "delivered while the mutator still held the world's lock"
    for attribute, key in case.expect.items():
        assert getattr(change, attribute) == context[key], attribute
    assert before_ms <= change.at_ms <= after_ms
    if case.kind.endswith("_updated") or case.kind == ChangeKind.TASK_ACCESS_CHANGED:
        assert change.attribute


def test_follower_changes_say_who() -> None:
    world = fresh_world()
    context = context_of(world)
    task = context["task"]
    changes = recording(world)
    added = world.add_follower(task)
    world.remove_follower(task, context["follower"])
    world.remove_app_follower(task, context["following_app"])
    world.add_app_follower(task, context["free_app"])
    users = world.followers(task)
    world.remove_all_followers(task)
    assert [c.followers for c in changes] == [
        ((added, "user"),),
        ((context["follower"], "user"),),
        ((context["following_app"], "app"),),
        ((context["free_app"], "app"),),
        (*((u, "user") for u in users), (context["free_app"], "app")),
    ]


def test_a_mutation_that_changes_nothing_notifies_nothing() -> None:
    world = fresh_world()
    context = context_of(world)
    task = context["task"]
    changes = recording(world)
    world.set_forbidden(task, False)
    world.set_v2_only(task, False)
    world.set_tasklist_forbidden(context["other"], False)
    world.set_tasklist_member(context["other"], context["stranger"], None)
    world.bind_user_token("u-again", 2)
    world.bind_user_token("u-again", 2)
    with pytest.raises(ValueError):
        world.add_follower(task, world.user(context["follower"]).index)  # follows already
    with pytest.raises(TaskNotFound):
        world.touch("00000000-0000-4000-8000-000000000000")
    world.remove_all_followers(task)
    world.remove_all_followers(task)
    assert [c.kind for c in changes] == [ChangeKind.USER_TOKEN_BOUND, ChangeKind.FOLLOWERS_CLEARED]


def lock_is_free(world: World) -> bool:
    """Whether another thread can take the world's lock right now (no waiting)."""
    taken: list[bool] = []

    def try_lock() -> None:
        taken.append(world.lock.acquire(blocking=False))
        if taken[0]:
            world.lock.release()

    other = threading.Thread(target=try_lock)
    other.start()
    other.join()
    return taken[0]


def test_changes_come_after_the_mutation() -> None:
    world = fresh_world()
    task = context_of(world)["task"]
    seen: list[bool] = []
    world.subscribe(lambda change: seen.append(task not in world))
    world.delete_task(task)
    assert seen == [True]


def test_subscribers_may_mutate_unsubscribe_and_changes_are_numbered() -> None:
    world = fresh_world()
    task = context_of(world)["task"]
    changes = recording(world)

    def touch_after_follow(change: Change) -> None:
        if change.kind == ChangeKind.FOLLOWER_ADDED:
            world.touch(task, when=2_000_000_000)

    stop = world.subscribe(touch_after_follow)
    world.add_follower(task)
    stop()
    world.add_follower(task)
    assert [c.kind for c in changes] == [
        ChangeKind.FOLLOWER_ADDED,
        ChangeKind.TASK_UPDATED,
        ChangeKind.FOLLOWER_ADDED,
    ]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes) and len({c.seq for c in changes}) == 3


def test_concurrent_mutators_number_their_changes_uniquely() -> None:
    world = fresh_world()
    changes = recording(world)
    ids = world.task_ids()[:8]
    threads = [threading.Thread(target=world.touch, args=(task,)) for task in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c.task_id or "" for c in changes) == sorted(ids)
    assert sorted(c.seq for c in changes) == list(range(1, len(ids) + 1))


def test_a_failing_subscriber_reaches_the_caller_and_the_others_still_hear() -> None:
    world = fresh_world()
    task = context_of(world)["task"]
    heard: list[Change] = []

    def broken(change: Change) -> None:
        raise RuntimeError("subscriber bug")

    world.subscribe(broken)
    world.subscribe(heard.append)
    with pytest.raises(RuntimeError, match="subscriber bug"):
        world.touch(task, when=2_000_000_000)
    assert [c.kind for c in heard] == [ChangeKind.TASK_UPDATED]
    assert world.task(task)["update_time"] == "2000000000"  # the change stands
