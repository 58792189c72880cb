"""The simulator's task v2 side over real HTTP: lists, list tasks, get task, errors, quotas, faults."""

from __future__ import annotations

import argparse
import re
from typing import Any

import httpx
import pytest

from feishu_simulator import DOCUMENTED_LIMITS, Faults, Simulator, TaskNotFound, World
from feishu_simulator.options import add_simulator_arguments, faults_from_args

from .conftest import APP_ID, APP_SECRET, USER_TOKEN, assert_error, auth, get_token

V1 = "/open-apis/task/v1/tasks"
TASKLISTS = "/open-apis/task/v2/tasklists"
TASKS = "/open-apis/task/v2/tasks"
UNKNOWN_GUID = "00000000-1111-2222-3333-444444444444"
DIGITS = re.compile(r"^[0-9]+$")


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(tasks=200, seed=7, users=500, forbidden=3, v2_only=0.05)


def list_tasks_url(guid: str) -> str:
    return f"{TASKLISTS}/{guid}/tasks"


def get(client: httpx.Client, url: str, token: str, **params: Any) -> dict[str, Any]:
    """A successful answer's data."""
    r = client.get(url, headers=auth(token), params=params)
    body = r.json()
    assert r.status_code == 200 and body["code"] == 0 and body["msg"] == "success", r.text
    return dict(body["data"])


def all_pages(client: httpx.Client, url: str, token: str, **params: Any) -> list[dict[str, Any]]:
    """Follow has_more/page_token to the end; the last page has no page_token."""
    items: list[dict[str, Any]] = []
    page_token = ""
    for _ in range(100):
        data = get(client, url, token, **params, page_token=page_token)
        assert len(data["items"]) <= int(params.get("page_size", 50))
        items += data["items"]
        if not data["has_more"]:
            assert "page_token" not in data
            return items
        assert data["items"] and data["page_token"] != page_token
        page_token = data["page_token"]
    raise AssertionError("pagination did not end")


def big_list(world: World) -> str:
    return max(
        world.find_tasklists(app_member=True, forbidden=False), key=lambda g: len(world.tasklist_tasks(g))
    )


def readable(world: World, task_id: str) -> bool:
    return task_id not in world.forbidden


def followers_of(members: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["id"], m["type"]) for m in members if m["role"] == "follower"]


# ---------------------------------------------------------------------- world


def test_generation_is_deterministic_and_has_every_kind() -> None:
    a, b = World.generate(tasks=300, seed=11), World.generate(tasks=300, seed=11)
    assert a.tasklist_guids() == b.tasklist_guids()
    assert all(a.tasklist(g) == b.tasklist(g) for g in a.tasklist_guids())
    assert all(a.v2_task(t) == b.v2_task(t) for t in a.task_ids())
    assert World.generate(tasks=300, seed=12).tasklist_guids() != a.tasklist_guids()
    # the v2 side never changes what v1 shows
    plain = World.generate(tasks=300, seed=11, tasklists=0, app_followers=0.0)
    assert all(plain.task(t) == a.task(t) for t in a.task_ids()) and plain.tasklist_guids() == []
    # a smaller world with as many lists is a prefix, lists included
    small = World.generate(tasks=50, seed=11, tasklists=len(a.tasklist_guids()))
    assert all(small.v2_task(t) == a.v2_task(t) for t in small.task_ids())

    assert 40 <= len(a.tasklist_guids()) <= 48
    for traits in ({"archived": True}, {"app_member": False}, {"forbidden": True}):
        assert a.find_tasklists(**traits), traits
    assert a.find_tasklists(app_member=False, user_member=0)
    assert a.find_tasklists(app_member=True, forbidden=False, user_member=None)
    assert max(len(a.tasklist_tasks(g)) for g in a.tasklist_guids()) > 100
    in_lists = [len(a.tasklists_of(t)) for t in a.task_ids()]
    assert {0, 1, 2} <= set(in_lists) and 0.1 < in_lists.count(0) / len(in_lists) < 0.3
    with_apps = [t for t in a.task_ids() if any(kind == "app" for _, kind in a.v2_followers(t))]
    assert 0.02 < len(with_apps) / len(in_lists) < 0.1
    assert any(set(a.v2_assignees(t)) & set(a.followers(t)) for t in a.task_ids())
    display = [a.display_id(t) for t in a.task_ids()]
    assert len(set(display)) == len(display) and all(re.fullmatch(r"t\d{6,7}", d) for d in display)
    only = World.generate(tasks=300, seed=11, v2_only=0.1).v2_only
    assert 0.05 < len(only) / 300 < 0.15


# ---------------------------------------------------------------------- list of lists


def test_tasklists_shape_and_paging(world: World, client: httpx.Client, token: str) -> None:
    items = all_pages(client, TASKLISTS, token, page_size=100)
    assert [i["guid"] for i in items] == world.visible_tasklists()
    assert [i["guid"] for i in all_pages(client, TASKLISTS, token, page_size=4)] == world.visible_tasklists()
    assert items == [world.tasklist(i["guid"], app_id=APP_ID) for i in items]
    for item in items:
        assert set(item) == {
            "guid",
            "name",
            "creator",
            "owner",
            "members",
            "url",
            "created_at",
            "updated_at",
            "archive_msec",
        }
        assert all(DIGITS.match(item[k]) for k in ("created_at", "updated_at", "archive_msec"))
        assert int(item["updated_at"]) >= int(item["created_at"])
        assert item["owner"]["role"] == "owner" and item["owner"]["type"] == "user"
        assert {"id": APP_ID, "type": "app", "role": item["members"][-1]["role"]} == item["members"][-1]
    archived = world.find_tasklists(archived=True, app_member=True)[0]
    assert next(i for i in items if i["guid"] == archived)["archive_msec"] != "0"
    assert set(world.find_tasklists(forbidden=True)) <= {i["guid"] for i in items}
    assert not set(world.find_tasklists(app_member=False)) & {i["guid"] for i in items}

    by_union = all_pages(client, TASKLISTS, token, page_size=100, user_id_type="union_id")
    for plain, union in zip(items, by_union, strict=True):
        assert world.user(plain["owner"]["id"]).union_id == union["owner"]["id"]
        assert [m["id"] for m in union["members"] if m["type"] != "user"] == [
            m["id"] for m in plain["members"] if m["type"] != "user"
        ]


def test_tasklists_of_a_user_token(world: World, sim: Simulator, client: httpx.Client) -> None:
    mine = [i["guid"] for i in all_pages(client, TASKLISTS, USER_TOKEN)]
    assert mine == world.visible_tasklists(0) and set(world.find_tasklists(app_member=False)) & set(mine)
    other = world.tasklist(world.tasklist_guids()[0])["owner"]["id"]
    world.bind_user_token("u-other", world.user(other).index)
    sim.tokens.user_tokens.add("u-other")
    try:
        theirs = [i["guid"] for i in all_pages(client, TASKLISTS, "u-other")]
        assert (
            theirs == world.visible_tasklists(world.user(other).index) and world.tasklist_guids()[0] in theirs
        )
    finally:
        world.user_token_owners.pop("u-other")
        sim.tokens.user_tokens.discard("u-other")


def test_tasklists_parameter_errors(client: httpx.Client, token: str) -> None:
    for params in (
        {"page_size": 101},
        {"page_size": 0},
        {"page_size": "x"},
        {"user_id_type": "email"},
        {"page_token": "nope"},
    ):
        body = assert_error(client.get(TASKLISTS, headers=auth(token), params=params), 400, 1470400)
        assert body["msg"].startswith(f"Invalid Param '{next(iter(params))}'")


# ---------------------------------------------------------------------- tasks of a list


def test_tasklist_tasks_paging_and_filters(world: World, client: httpx.Client, token: str) -> None:
    guid = big_list(world)
    url = list_tasks_url(guid)
    expected = world.tasklist_tasks(guid)
    assert len(expected) > 100
    first = get(client, url, token, page_size=100)
    assert len(first["items"]) == 100 and first["has_more"] and first["page_token"]
    items = all_pages(client, url, token, page_size=100)
    assert [i["guid"] for i in items] == expected
    assert [i["guid"] for i in all_pages(client, url, token, page_size=17)] == expected
    assert len(get(client, url, token)["items"]) == 50  # the default page size

    done = all_pages(client, url, token, completed="true", page_size=100)
    open_ = all_pages(client, url, token, completed="FALSE", page_size=100)
    assert [i["guid"] for i in done] == world.tasklist_tasks(guid, completed=True)
    assert all(i["completed_at"] != "0" for i in done) and all(i["completed_at"] == "0" for i in open_)
    assert len(done) + len(open_) == len(expected) and done and open_

    lo, hi = world.created_ms(expected[10]), world.created_ms(expected[40])
    window = all_pages(client, url, token, created_from=lo, created_to=hi, page_size=7)
    assert [i["guid"] for i in window] == expected[10:41]
    assert [i["guid"] for i in window] == world.tasklist_tasks(guid, created_from=lo, created_to=hi)
    assert get(client, url, token, created_from=hi + 1, created_to=hi)["items"] == []


def test_tasklist_task_summary_shape(world: World, client: httpx.Client, token: str) -> None:
    guid = big_list(world)
    for item in all_pages(client, list_tasks_url(guid), token, page_size=100, user_id_type="user_id"):
        task_id = item["guid"]
        v2 = world.v2_task(task_id, "user_id")
        assert set(item) <= {"guid", "summary", "completed_at", "start", "due", "members", "subtask_count"}
        assert item["summary"] == v2["summary"] and item["completed_at"] == v2["completed_at"]
        assert item.get("due") == v2.get("due") and item.get("start") == v2.get("start")
        assert [m["id"] for m in item["members"]] == world.v2_assignees(task_id, "user_id")
        assert {m["role"] for m in item["members"]} <= {"assignee"}
        assert isinstance(item["subtask_count"], int)
    summaries = all_pages(client, list_tasks_url(guid), token, page_size=100)
    assert any("start" in s for s in summaries) and any("due" in s and "start" not in s for s in summaries)


def test_tasklist_permissions_and_errors(world: World, client: httpx.Client, token: str) -> None:
    forbidden = world.find_tasklists(forbidden=True)[0]
    foreign = world.find_tasklists(app_member=False, user_member=0)[0]
    assert_error(client.get(list_tasks_url(forbidden), headers=auth(token)), 403, 1470403)
    assert_error(client.get(list_tasks_url(foreign), headers=auth(token)), 403, 1470403)
    assert_error(client.get(list_tasks_url(UNKNOWN_GUID), headers=auth(token)), 404, 1470404)
    assert_error(client.get(list_tasks_url("not-a-guid"), headers=auth(token)), 400, 1470400)
    assert [i["guid"] for i in all_pages(client, list_tasks_url(foreign), USER_TOKEN)] == (
        world.tasklist_tasks(foreign)
    )
    not_mine = world.find_tasklists(app_member=True, forbidden=False)
    not_mine = [g for g in not_mine if g not in world.visible_tasklists(0)]
    assert_error(client.get(list_tasks_url(not_mine[0]), headers=auth(USER_TOKEN)), 403, 1470403)

    guid, other = big_list(world), world.find_tasklists(app_member=True, forbidden=False)[0]
    page_token = get(client, list_tasks_url(guid), token, page_size=5)["page_token"]
    r = client.get(list_tasks_url(other), headers=auth(token), params={"page_token": page_token})
    assert_error(r, 400, 1470400)
    for params in ({"completed": "yes"}, {"created_from": "-1"}, {"created_to": "soon"}, {"page_size": 101}):
        assert_error(client.get(list_tasks_url(guid), headers=auth(token), params=params), 400, 1470400)


# ---------------------------------------------------------------------- get task


def test_get_task_shape_and_members(world: World, client: httpx.Client, token: str) -> None:
    with_app = next(
        t
        for t in world.task_ids()
        if readable(world, t)
        and any(kind == "app" for _, kind in world.v2_followers(t))
        and world.tasklists_of(t)
    )
    both = next(
        t
        for t in world.task_ids()
        if readable(world, t) and set(world.v2_assignees(t)) & set(world.followers(t))
    )
    for task_id in (with_app, both):
        v1 = get(client, f"{V1}/{task_id}", token)["task"] if task_id not in world.v2_only else None
        for id_type in ("open_id", "union_id", "user_id"):
            task = get(client, f"{TASKS}/{task_id}", token, user_id_type=id_type)["task"]
            assert task == world.v2_task(task_id, id_type)
            assert followers_of(task["members"]) == world.v2_followers(task_id, id_type)
            assert [(f, "user") for f in world.followers(task_id, id_type)] == [
                f for f in followers_of(task["members"]) if f[1] == "user"
            ]
            assignees = [m["id"] for m in task["members"] if m["role"] == "assignee"]
            assert assignees == world.v2_assignees(task_id, id_type)
            assert {m["type"] for m in task["members"]} <= {"user", "app"}
        assert task["guid"] == task_id and task["task_id"] == world.display_id(task_id) != task_id
        assert task["status"] == ("todo" if task["completed_at"] == "0" else "done")
        assert all(DIGITS.match(task[k]) for k in ("created_at", "updated_at", "completed_at"))
        if v1 is not None:
            assert int(task["created_at"]) // 1000 == int(v1["create_time"])
            assert int(task["updated_at"]) // 1000 == int(v1["update_time"])
            creator = world.convert_id(v1["creator_id"], "open_id", "user_id")  # task is the user_id one
            assert task["creator"] == {"id": creator, "type": "user", "role": "creator"}
    apps = [m for m in get(client, f"{TASKS}/{with_app}", token)["task"]["members"] if m["type"] == "app"]
    assert apps and all(m["id"].startswith("cli_") and m["role"] == "follower" and m["name"] for m in apps)
    members = get(client, f"{TASKS}/{both}", token)["task"]["members"]
    twice = set(world.v2_assignees(both)) & set(world.followers(both))
    assert all(sum(m["id"] == user for m in members) == 2 for user in twice)


def test_v1_and_v2_followers_agree(world: World, client: httpx.Client, token: str) -> None:
    """Over HTTP: v2's user followers are v1's, in order; v2 adds only app followers."""
    tasks = [t for t in world.task_ids()[:60] if readable(world, t) and t not in world.v2_only]
    assert any(len(world.followers(t)) > 100 for t in tasks)
    for task_id in tasks:
        v1 = [i["id"] for i in all_pages(client, f"{V1}/{task_id}/followers", token, page_size=50)]
        v2 = followers_of(get(client, f"{TASKS}/{task_id}", token)["task"]["members"])
        assert [(i, "user") for i in v1] == [f for f in v2 if f[1] == "user"]
        assert all(f[0] in world.app_names for f in v2 if f[1] != "user")


def test_get_task_lists_only_the_readable_lists(world: World, client: httpx.Client, token: str) -> None:
    hidden = set(world.find_tasklists(app_member=False)) | set(world.find_tasklists(forbidden=True))
    task_id = next(t for t in world.task_ids() if readable(world, t) and set(world.tasklists_of(t)) & hidden)
    shown = get(client, f"{TASKS}/{task_id}", token)["task"]["tasklists"]
    assert [s["tasklist_guid"] for s in shown] == [g for g in world.tasklists_of(task_id) if g not in hidden]
    for entry in shown:
        assert entry["section_guid"] and set(entry) == {"tasklist_guid", "section_guid"}
    as_user = get(client, f"{TASKS}/{task_id}", USER_TOKEN)["task"]["tasklists"]
    assert [s["tasklist_guid"] for s in as_user] == [
        g
        for g in world.tasklists_of(task_id)
        if g in world.visible_tasklists(0) and g not in world.find_tasklists(forbidden=True)
    ]


def test_get_task_errors_and_v2_only_tasks(world: World, client: httpx.Client, token: str) -> None:
    assert_error(client.get(f"{TASKS}/{UNKNOWN_GUID}", headers=auth(token)), 404, 1470404)
    assert_error(client.get(f"{TASKS}/not-a-guid", headers=auth(token)), 400, 1470400)
    assert_error(
        client.get(f"{TASKS}/{world.task_ids()[0]}", headers=auth(token), params={"user_id_type": "x"}),
        400,
        1470400,
    )
    forbidden = sorted(world.forbidden)[0]
    assert_error(client.get(f"{TASKS}/{forbidden}", headers=auth(token)), 403, 1470403)
    assert world.v2_only
    for task_id in sorted(world.v2_only - world.forbidden)[:3]:
        assert get(client, f"{TASKS}/{task_id}", token)["task"]["guid"] == task_id
        assert_error(client.get(f"{V1}/{task_id}/followers", headers=auth(token)), 400, 1470602)
        assert_error(client.get(f"{V1}/{task_id}", headers=auth(token)), 400, 1470602)
    listed = {t["id"] for t in all_v1_tasks(client, token)}
    assert not listed & world.v2_only and len(listed) == len(
        set(world.task_ids()) - world.forbidden - world.v2_only
    )


def all_v1_tasks(client: httpx.Client, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    data = get(client, V1, token, page_size=100)
    items += data["items"]
    while data["has_more"]:
        data = get(client, V1, token, page_size=100, page_token=data["page_token"])
        items += data["items"]
    return items


# ---------------------------------------------------------------------- mutations


def test_follower_mutations_agree_across_v1_and_v2() -> None:
    world = World.generate(tasks=20, seed=3)
    with (
        Simulator(world, app_id=APP_ID, app_secret=APP_SECRET) as own,
        httpx.Client(base_url=own.base_url, timeout=5) as c,
    ):
        token = get_token(c)
        task_id = world.task_ids()[5]

        def v1() -> list[tuple[str, str]]:
            return [(i["id"], "user") for i in all_pages(c, f"{V1}/{task_id}/followers", token)]

        def v2() -> list[tuple[str, str]]:
            return followers_of(get(c, f"{TASKS}/{task_id}", token)["task"]["members"])

        added = world.add_follower(task_id)
        app = world.add_app_follower(task_id)
        assert v2() == v1() + [(app, "app")] == world.v2_followers(task_id) and (added, "user") in v1()
        world.remove_follower(task_id, added)
        world.remove_app_follower(task_id, app)
        assert v2() == v1() == world.v2_followers(task_id) and (added, "user") not in v1()
        world.add_app_follower(task_id, "cli_other")
        with pytest.raises(ValueError):
            world.add_app_follower(task_id, "cli_other")
        world.remove_all_followers(task_id)
        assert v1() == v2() == [] == world.v2_followers(task_id)

        world.set_v2_only(task_id)
        assert_error(c.get(f"{V1}/{task_id}/followers", headers=auth(token)), 400, 1470602)
        assert v2() == []
        world.set_v2_only(task_id, False)
        assert v1() == []


def test_tasklist_mutations() -> None:
    world = World.generate(tasks=30, seed=5)
    with (
        Simulator(world, app_id=APP_ID, app_secret=APP_SECRET) as own,
        httpx.Client(base_url=own.base_url, timeout=5) as c,
    ):
        token = get_token(c)

        def listed() -> list[str]:
            return [i["guid"] for i in all_pages(c, TASKLISTS, token)]

        def tasks(guid: str) -> list[str]:
            return [i["guid"] for i in all_pages(c, list_tasks_url(guid), token)]

        new = world.add_tasklist("Fresh")
        assert listed()[-1] == new and tasks(new) == [] == world.tasklist_tasks(new)
        first, second = world.task_ids()[3], world.task_ids()[1]
        world.add_task_to_tasklist(new, first)
        world.add_task_to_tasklist(new, second)
        with pytest.raises(ValueError):
            world.add_task_to_tasklist(new, first)
        assert tasks(new) == world.tasklist_tasks(new) and set(tasks(new)) == {first, second}
        shown = get(c, f"{TASKS}/{first}", token)["task"]["tasklists"]
        assert shown[-1]["tasklist_guid"] == new and shown[-1]["section_guid"]
        world.remove_task_from_tasklist(new, first)
        assert tasks(new) == [second] and new not in world.tasklists_of(first)

        stamp = world.archive_tasklist(new)
        assert get(c, TASKLISTS, token)["items"][-1]["archive_msec"] == str(stamp) != "0"
        assert tasks(new) == [second]  # archived lists stay readable
        world.set_tasklist_forbidden(new)
        assert_error(c.get(list_tasks_url(new), headers=auth(token)), 403, 1470403)
        assert new in listed()
        world.set_tasklist_forbidden(new, False)
        world.set_tasklist_app_role(new, None)
        assert new not in listed()
        assert_error(c.get(list_tasks_url(new), headers=auth(token)), 403, 1470403)
        world.set_tasklist_app_role(new, "editor")
        assert tasks(new) == [second]
        world.remove_tasklist(new)
        assert_error(c.get(list_tasks_url(new), headers=auth(token)), 404, 1470404)
        assert new not in listed() and new not in world.tasklists_of(second)
        added = world.add_task(followers=2)
        assert get(c, f"{TASKS}/{added}", token)["task"]["tasklists"] == []


def test_deleted_task_is_unknown_to_v1_and_v2_and_leaves_its_lists() -> None:
    world = World.generate(tasks=30, seed=5)
    with (
        Simulator(world, app_id=APP_ID, app_secret=APP_SECRET) as own,
        httpx.Client(base_url=own.base_url, timeout=5) as c,
    ):
        token = get_token(c)
        readable = set(world.find_tasklists(app_member=True, forbidden=False))
        doomed = next(t for t in world.task_ids() if len(set(world.tasklists_of(t)) & readable) >= 2)
        its_lists = [g for g in world.tasklists_of(doomed) if g in readable]
        kept = next(
            t for t in world.task_ids() if t != doomed and set(world.tasklists_of(t)) & set(its_lists)
        )
        before = {g: [i["guid"] for i in all_pages(c, list_tasks_url(g), token)] for g in its_lists}
        assert all(doomed in tasks for tasks in before.values())

        world.delete_task(doomed)
        for url in (f"{V1}/{doomed}", f"{V1}/{doomed}/followers"):
            assert assert_error(c.get(url, headers=auth(token)), 400, 1470602)["msg"] == "task not found"
        assert_error(c.get(f"{TASKS}/{doomed}", headers=auth(token)), 404, 1470404)
        for guid, tasks in before.items():
            after = [i["guid"] for i in all_pages(c, list_tasks_url(guid), token)]
            assert after == [t for t in tasks if t != doomed] == world.tasklist_tasks(guid)
        assert doomed not in {t["id"] for t in all_v1_tasks(c, token)} and doomed not in world.task_ids()
        assert get(c, f"{TASKS}/{kept}", token)["task"]["guid"] == kept  # the others stay
        with pytest.raises(TaskNotFound):
            world.delete_task(doomed)


# ---------------------------------------------------------------------- faults, quotas, stats


def test_numeric_timestamps_string_counts_and_empty_last_token(
    world: World, sim: Simulator, client: httpx.Client, token: str
) -> None:
    guid = big_list(world)
    sim.faults.v2_numeric_timestamps = True
    sim.faults.v2_string_counts = True
    task = get(client, f"{TASKS}/{world.tasklist_tasks(guid)[0]}", token)["task"]
    expected = world.v2_task(task["guid"])
    for key in ("created_at", "updated_at", "completed_at"):
        assert task[key] == int(expected[key]) and isinstance(task[key], int)
    assert task["subtask_count"] == str(expected["subtask_count"])
    with_due = next(i for i in get(client, list_tasks_url(guid), token, page_size=100)["items"] if "due" in i)
    assert isinstance(with_due["due"]["timestamp"], int) and isinstance(with_due["subtask_count"], str)
    listing = get(client, TASKLISTS, token)["items"][0]
    assert all(isinstance(listing[k], int) for k in ("created_at", "updated_at", "archive_msec"))

    sim.faults = Faults(v2_empty_page_token_on_last_page=True)
    last = get(client, TASKLISTS, token, page_size=100)
    assert last["has_more"] is False and last["page_token"] == ""
    assert isinstance(last["items"][0]["created_at"], str)


def test_quotas_are_counted_per_endpoint(
    world: World, sim: Simulator, client: httpx.Client, token: str
) -> None:
    task_id = next(t for t in world.task_ids() if readable(world, t) and t not in world.v2_only)
    urls = {
        "v2_get_task": f"{TASKS}/{task_id}",
        "v2_tasklists": TASKLISTS,
        "v2_tasklist_tasks": list_tasks_url(big_list(world)),
        "followers": f"{V1}/{task_id}/followers",
    }
    sim.faults.quota_per_minute = 3
    for url in urls.values():  # each endpoint has its own three
        assert [client.get(url, headers=auth(token)).status_code for _ in range(3)] == [200] * 3
    for url in urls.values():
        r = client.get(url, headers=auth(token))
        assert_error(r, 429, 99991400)
        assert r.headers["x-ogw-ratelimit-limit"] == "3"

    sim.faults = Faults(quota_per_endpoint={"v2_get_task": (1, None)})
    sim.reset_quota()
    assert client.get(urls["v2_get_task"], headers=auth(token)).status_code == 200
    r = client.get(urls["v2_get_task"], headers=auth(token))
    assert_error(r, 429, 99991400)
    assert (r.headers["x-ogw-ratelimit-limit"], r.headers["x-ogw-ratelimit-reset"]) == ("1", "1")
    assert all(
        client.get(urls[e], headers=auth(token)).status_code == 200 for e in ("v2_tasklists", "followers")
    )
    assert DOCUMENTED_LIMITS["v2_get_task"] == (10, None) and DOCUMENTED_LIMITS["v2_tasklists"] == (50, 1000)
    assert client.post("/_sim/faults", json={"quota_per_endpoint": {"followers": [2, 5]}}).status_code == 200
    assert sim.faults.quota_for("followers") == (2, 5) and sim.faults.quota_for("v2_get_task") == (None, None)


def test_existing_faults_apply_to_v2(world: World, sim: Simulator, client: httpx.Client, token: str) -> None:
    url = f"{TASKS}/{world.task_ids()[0]}"
    sim.faults.error_500_fraction = 1.0
    assert_error(client.get(url, headers=auth(token)), 500, 1470500)
    assert_error(client.get(TASKLISTS, headers=auth(token)), 500, 1470500)
    sim.faults = Faults(html_502_fraction=1.0)
    r = client.get(TASKLISTS, headers=auth(token))
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    sim.faults = Faults(rate_limit_fraction=1.0, storm_reset_seconds=2)
    r = client.get(url, headers=auth(token))
    assert_error(r, 429, 99991400)
    assert r.headers["x-ogw-ratelimit-reset"] == "2"
    sim.faults = Faults()
    assert_error(client.get(url), 400, 99991661)
    sim.expire_tokens()
    assert_error(client.get(url, headers=auth(token)), 400, 99991663)
    assert get(client, url, get_token(client))["task"]["guid"] == world.task_ids()[0]


def test_stats_count_v2_endpoints(sim: Simulator, world: World, client: httpx.Client, token: str) -> None:
    get(client, TASKLISTS, token)
    get(client, list_tasks_url(big_list(world)), token)
    get(client, f"{TASKS}/{world.task_ids()[0]}", token)
    client.get(f"{TASKS}/{UNKNOWN_GUID}", headers=auth(token))
    stats = sim.stats.as_dict()
    assert stats["business_requests"] == 4 and stats["by_status"] == {200: 3, 404: 1}
    assert stats["by_endpoint"] == {"token": 1, "v2_tasklists": 1, "v2_tasklist_tasks": 1, "v2_get_task": 2}


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_simulator_arguments(parser)
    args = parser.parse_args(
        ["--tasklists", "9", "--v2-only-share", "0.2", "--documented-quotas", "--v2-numeric-timestamps"]
    )
    assert (args.tasklists, args.v2_only_share, args.app_follower_share) == (9, 0.2, 0.05)
    faults = faults_from_args(args)
    assert faults.quota_per_endpoint == DOCUMENTED_LIMITS and faults.v2_numeric_timestamps
    assert faults_from_args(parser.parse_args([])).quota_per_endpoint == {}
