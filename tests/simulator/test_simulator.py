"""The Feishu simulator over real HTTP: auth, paging, error codes, faults, mutations."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from feishu_simulator import Faults, Simulator, World

from .conftest import APP_ID, APP_SECRET, TOKEN_PATH, USER_TOKEN, assert_error, auth, get_token

TASKS = "/open-apis/task/v1/tasks"
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(tasks=200, seed=7, users=500, forbidden=3, invalid=4)


def followers_url(task_id: str) -> str:
    return f"{TASKS}/{task_id}/followers"


def all_pages(client: httpx.Client, url: str, token: str, **params: Any) -> list[dict[str, Any]]:
    """Follow has_more/page_token to the end, asserting no page fails."""
    items: list[dict[str, Any]] = []
    page_token = ""
    for _ in range(100):
        r = client.get(url, headers=auth(token), params={**params, "page_token": page_token})
        body = r.json()
        assert r.status_code == 200 and body["code"] == 0, r.text
        items += body["data"]["items"]
        if not body["data"]["has_more"]:
            assert "page_token" not in body["data"]
            return items
        page_token = body["data"]["page_token"]
    raise AssertionError("pagination did not end")


def big_task(world: World, minimum: int) -> str:
    return next(t for t in world.task_ids() if len(world.followers(t)) > minimum and t not in world.forbidden)


# ---------------------------------------------------------------------- world


def test_generate_is_deterministic_and_realistic() -> None:
    a, b = World.generate(tasks=300, seed=11), World.generate(tasks=300, seed=11)
    assert a.task_ids() == b.task_ids()
    assert [u.open_id for u in a.users] == [u.open_id for u in b.users]
    assert all(a.task(t) == b.task(t) for t in a.task_ids())
    assert World.generate(tasks=300, seed=12).task_ids() != a.task_ids()
    assert World.generate(tasks=50, seed=11).task_ids() == a.task_ids()[:50]
    assert all(UUID4_RE.match(t) for t in a.task_ids())
    user = a.users[0]
    assert re.fullmatch(r"ou_[0-9a-f]{32}", user.open_id)
    assert re.fullmatch(r"on_[0-9a-f]{32}", user.union_id)
    assert re.fullmatch(r"[0-9a-f]{8}", user.user_id)
    counts = [len(a.followers(t)) for t in a.task_ids()]
    assert 0 in counts and 1 in counts and max(counts) > 100
    assert any(50 < c <= 100 for c in counts)
    assert 0.05 <= counts.count(0) / len(counts) <= 0.2
    with_lists = sum(len(a.follower_id_lists(t)) for t in a.task_ids())
    assert 0.02 < with_lists / sum(counts) < 0.09
    for t in a.task_ids():
        task = a.task(t)
        assert int(task["update_time"]) >= int(task["create_time"])


# ---------------------------------------------------------------------- tokens


def test_token_is_reused_while_over_30_minutes_left(client: httpx.Client) -> None:
    first = client.post(TOKEN_PATH, json={"app_id": APP_ID, "app_secret": APP_SECRET}).json()
    second = client.post(TOKEN_PATH, json={"app_id": APP_ID, "app_secret": APP_SECRET}).json()
    assert first["tenant_access_token"].startswith("t-")
    assert second["tenant_access_token"] == first["tenant_access_token"]
    assert 1800 < second["expire"] <= first["expire"] <= 7200
    assert "data" not in first


def test_token_renewed_in_last_30_minutes_old_stays_valid(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.token_ttl_seconds = 1000
    old, new = get_token(client), get_token(client)
    assert old != new
    task = sim.world.task_ids()[0]
    for token in (old, new):
        assert client.get(followers_url(task), headers=auth(token)).json()["code"] == 0


def test_bad_credentials_answer_200_with_10003(client: httpx.Client) -> None:
    for payload in ({"app_id": APP_ID, "app_secret": "nope"}, {"app_id": "other", "app_secret": APP_SECRET}):
        r = client.post(TOKEN_PATH, json=payload)
        assert (r.status_code, r.json()["code"]) == (200, 10003)
    r = client.post(TOKEN_PATH, content=b"not json")
    assert (r.status_code, r.json()["code"]) == (200, 10003)


def test_token_errors_on_business_calls(sim: Simulator, client: httpx.Client) -> None:
    url = followers_url(sim.world.task_ids()[0])
    assert_error(client.get(url), 400, 99991661)
    assert_error(client.get(url, headers={"Authorization": "Basic abc"}), 400, 99991661)
    assert_error(client.get(url, headers=auth("garbage")), 400, 99991671)
    assert_error(client.get(url, headers=auth("t-unknown")), 400, 99991663)
    assert_error(client.get(url, headers=auth("u-stranger")), 400, 99991668)
    assert client.get(url, headers=auth(USER_TOKEN)).json()["code"] == 0
    sim.faults.token_error_http_status = 200
    assert_error(client.get(url, headers=auth("t-unknown")), 200, 99991663)


def test_wrong_token_type_is_403_1470403(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.tenant_token_prefix = "a-"
    token = get_token(client)
    assert token.startswith("a-")
    assert_error(client.get(followers_url(sim.world.task_ids()[0]), headers=auth(token)), 403, 1470403)


def test_expire_tokens_then_fresh_token_works(sim: Simulator, client: httpx.Client) -> None:
    url = followers_url(sim.world.task_ids()[0])
    token = get_token(client)
    assert client.get(url, headers=auth(token)).json()["code"] == 0
    sim.expire_tokens()
    assert_error(client.get(url, headers=auth(token)), 400, 99991663)
    fresh = get_token(client)
    assert fresh != token
    assert client.get(url, headers=auth(fresh)).json()["code"] == 0
    assert client.post("/_sim/expire_tokens").json() == {"ok": True}
    assert_error(client.get(url, headers=auth(fresh)), 400, 99991663)


def test_token_expires_after_ttl(sim: Simulator, client: httpx.Client) -> None:
    sim.faults.token_ttl_seconds = 1
    token = get_token(client)
    r = client.post(TOKEN_PATH, json={"app_id": APP_ID, "app_secret": APP_SECRET})
    assert r.json()["expire"] == 1
    time.sleep(1.05)
    assert_error(client.get(followers_url(sim.world.task_ids()[0]), headers=auth(token)), 400, 99991663)


# ---------------------------------------------------------------------- followers


def test_pagination_over_100_followers_all_id_types(world: World, client: httpx.Client) -> None:
    token = get_token(client)
    task = big_task(world, 100)
    by_type = {}
    for id_type in ("open_id", "union_id", "user_id"):
        items = all_pages(client, followers_url(task), token, user_id_type=id_type, page_size=50)
        assert [i["id"] for i in items] == world.followers(task, id_type)
        lists = {i["id"]: i["id_list"] for i in items if "id_list" in i}
        assert lists == world.follower_id_lists(task, id_type)
        by_type[id_type] = [i["id"] for i in items]
    for open_id, union_id, user_id in zip(*by_type.values(), strict=True):
        user = world.user(open_id)
        assert (user.union_id, user.user_id) == (union_id, user_id)
    assert [i["id"] for i in all_pages(client, followers_url(task), token)] == world.followers(task)
    small = all_pages(client, followers_url(task), token, page_size=7)
    assert [i["id"] for i in small] == world.followers(task)


def test_page_with_id_lists_is_exercised(world: World, client: httpx.Client) -> None:
    token = get_token(client)
    task = next(t for t in world.task_ids() if world.follower_id_lists(t) and t not in world.forbidden)
    items = all_pages(client, followers_url(task), token)
    assert {i["id"]: i["id_list"] for i in items if "id_list" in i} == world.follower_id_lists(task)
    assert all(1 <= len(lst) <= 3 for lst in world.follower_id_lists(task).values())


def test_follower_parameter_errors(world: World, client: httpx.Client) -> None:
    token = get_token(client)
    task, other = big_task(world, 50), world.task_ids()[0]
    url = followers_url(task)
    assert_error(client.get(url, headers=auth(token), params={"page_size": 51}), 400, 1470421)
    for bad in ("0", "abc", "-1"):
        assert_error(client.get(url, headers=auth(token), params={"page_size": bad}), 400, 99992402)
    assert_error(client.get(url, headers=auth(token), params={"user_id_type": "email"}), 400, 99992402)
    assert_error(client.get(url, headers=auth(token), params={"page_token": "%%garbage"}), 400, 1470422)
    first = client.get(url, headers=auth(token)).json()["data"]
    assert first["has_more"] and first["page_token"]
    foreign = client.get(
        followers_url(other), headers=auth(token), params={"page_token": first["page_token"]}
    )
    assert_error(foreign, 400, 1470422)
    tampered = first["page_token"][:-2] + ("AA" if not first["page_token"].endswith("AA") else "BB")
    assert_error(client.get(url, headers=auth(token), params={"page_token": tampered}), 400, 1470422)


def test_invalid_unknown_and_forbidden_tasks(world: World, client: httpx.Client) -> None:
    token = get_token(client)
    forbidden = sorted(world.forbidden)[0]
    unknown = world.invalid_ids[0]
    assert unknown not in world
    for bad in ("not-a-task", unknown.upper(), unknown, world.invalid_ids[1]):
        assert_error(client.get(followers_url(bad), headers=auth(token)), 400, 1470602)
        assert_error(client.get(f"{TASKS}/{bad}", headers=auth(token)), 400, 1470602)
    assert_error(client.get(followers_url(forbidden), headers=auth(token)), 400, 1470432)
    assert_error(client.get(f"{TASKS}/{forbidden}", headers=auth(token)), 400, 1470432)


def test_get_task_shape(world: World, client: httpx.Client) -> None:
    token = get_token(client)
    task_id = big_task(world, 50)
    r = client.get(f"{TASKS}/{task_id}", headers=auth(token), params={"user_id_type": "union_id"})
    task = r.json()["data"]["task"]
    assert task == world.task(task_id, "union_id")
    assert [f["id"] for f in task["followers"]] == world.followers(task_id, "union_id")
    for key in ("id", "summary", "description", "creator_id", "create_time", "update_time", "complete_time"):
        assert isinstance(task[key], str)
    assert set(task["origin"]["href"]) == {"url", "title"}


# ---------------------------------------------------------------------- faults


def test_minute_quota_429_with_headers_and_rejects_do_not_count(sim: Simulator, client: httpx.Client) -> None:
    token = get_token(client)
    sim.faults.quota_per_minute = 5
    url = followers_url(sim.world.task_ids()[0])
    codes = [client.get(url, headers=auth(token)).status_code for _ in range(5)]
    assert codes == [200] * 5
    r = client.get(url, headers=auth(token))
    assert_error(r, 429, 99991400)
    assert r.json()["msg"] == "request trigger frequency limit"
    assert r.headers["x-ogw-ratelimit-limit"] == "5"
    assert 1 <= int(r.headers["x-ogw-ratelimit-reset"]) <= 60
    assert client.post(TOKEN_PATH, json={"app_id": APP_ID, "app_secret": APP_SECRET}).status_code == 200
    sim.faults.quota_per_minute = 7  # the rejected request above did not consume quota
    assert [client.get(url, headers=auth(token)).status_code for _ in range(3)] == [200, 200, 429]
    sim.faults.rate_limit_http_status = 400
    assert_error(client.get(url, headers=auth(token)), 400, 99991400)
    assert sim.stats.rate_limited == 3


def test_second_quota(sim: Simulator, client: httpx.Client) -> None:
    token = get_token(client)
    url = followers_url(sim.world.task_ids()[0])
    sim.faults.quota_per_second = 3
    responses = [client.get(url, headers=auth(token)) for _ in range(6)]
    assert [r.status_code for r in responses][:4] == [200, 200, 200, 429]
    limited = responses[3]
    assert (limited.headers["x-ogw-ratelimit-limit"], limited.headers["x-ogw-ratelimit-reset"]) == ("3", "1")
    time.sleep(1.0)
    assert client.get(url, headers=auth(token)).status_code == 200


def test_random_storm_and_its_determinism(sim: Simulator, client: httpx.Client) -> None:
    token = get_token(client)
    url = followers_url(sim.world.task_ids()[0])
    sim.faults = Faults(rate_limit_fraction=1.0, storm_reset_seconds=3)
    r = client.get(url, headers=auth(token))
    assert_error(r, 429, 99991400)
    assert r.headers["x-ogw-ratelimit-reset"] == "3"

    def run() -> list[int]:
        sim.faults = Faults(rate_limit_fraction=0.3, error_500_fraction=0.2, seed=5)
        return [client.get(url, headers=auth(token)).status_code for _ in range(40)]

    first = run()
    assert first == run()
    assert {200, 429, 500} <= set(first)


def test_html_502_and_json_500(sim: Simulator, client: httpx.Client) -> None:
    token = get_token(client)
    url = followers_url(sim.world.task_ids()[0])
    sim.faults.html_502_fraction = 1.0
    r = client.get(url, headers=auth(token))
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    assert r.text.lstrip().startswith("<html>") and r.headers["X-Tt-Logid"]
    sim.faults = Faults(error_500_fraction=1.0)
    assert_error(client.get(url, headers=auth(token)), 500, 1470605)


def test_fail_first_n_and_always_fail(sim: Simulator, client: httpx.Client) -> None:
    token = get_token(client)
    first, second = sim.world.task_ids()[:2]
    sim.faults.fail_first_n_requests_for = {first: 2}
    sim.faults.always_fail_tasks = {second}
    codes = [client.get(followers_url(first), headers=auth(token)).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert sim.faults.fail_first_n_requests_for == {first: 0}
    for _ in range(3):
        assert_error(client.get(followers_url(second), headers=auth(token)), 500, 1470605)


def test_page_token_fault_variants(sim: Simulator, world: World, client: httpx.Client) -> None:
    token = get_token(client)
    task = big_task(world, 60)
    url = followers_url(task)
    sim.faults.repeat_page_token_tasks = {task}
    page1 = client.get(url, headers=auth(token)).json()["data"]
    page2 = client.get(url, headers=auth(token), params={"page_token": page1["page_token"]}).json()["data"]
    assert page1["has_more"] and page2["has_more"] and page1["page_token"] == page2["page_token"]

    small = next(t for t in world.task_ids() if 0 < len(world.followers(t)) < 50 and t not in world.forbidden)
    sim.faults = Faults(page_token_on_last_page=True)
    last = client.get(followers_url(small), headers=auth(token)).json()["data"]
    assert last["has_more"] is False and last["page_token"]
    after = client.get(followers_url(small), headers=auth(token), params={"page_token": last["page_token"]})
    assert after.json()["data"] == {"items": [], "has_more": False, "page_token": last["page_token"]}
    sim.faults = Faults(omit_has_more_with_empty_token=True)
    last = client.get(followers_url(small), headers=auth(token)).json()["data"]
    assert last["has_more"] is True and last["page_token"] == ""
    assert len(last["items"]) == len(world.followers(small))


def test_latency(sim: Simulator, client: httpx.Client) -> None:
    token = get_token(client)
    sim.faults.latency_ms = 100
    started = time.perf_counter()
    client.get(followers_url(sim.world.task_ids()[0]), headers=auth(token))
    assert time.perf_counter() - started >= 0.1


def test_unknown_path_is_plain_text_404(client: httpx.Client) -> None:
    for r in (client.get("/open-apis/task/v2/whatever"), client.post(TASKS), client.get("/")):
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/plain")
        assert r.headers["X-Tt-Logid"]
        with pytest.raises(ValueError):
            r.json()


# ---------------------------------------------------------------------- list tasks


def test_list_tasks_order_filters_and_paging(world: World, client: httpx.Client) -> None:
    token = get_token(client)
    readable = [world.task(t) for t in world.task_ids() if t not in world.forbidden]
    expected = [t["id"] for t in sorted(readable, key=lambda t: (int(t["create_time"]), t["id"]))]
    items = all_pages(client, TASKS, token, page_size=100)
    assert [t["id"] for t in items] == expected
    assert [t["id"] for t in all_pages(client, TASKS, token, page_size=13)] == expected
    lo, hi = int(items[20]["create_time"]), int(items[60]["create_time"])
    window = all_pages(client, TASKS, token, start_create_time=lo, end_create_time=hi)
    assert [t["id"] for t in window] == [t["id"] for t in items if lo <= int(t["create_time"]) <= hi]
    assert window[0]["id"] == items[20]["id"] and window[-1]["id"] == items[60]["id"]
    done = all_pages(client, TASKS, token, task_completed="true")
    assert [t["id"] for t in done] == [t["id"] for t in items if t["complete_time"] != "0"]
    open_ = all_pages(client, TASKS, token, task_completed="false", user_id_type="user_id")
    assert len(open_) + len(done) == len(items)
    assert [f["id"] for f in open_[0]["followers"]] == world.followers(open_[0]["id"], "user_id")
    assert_error(client.get(TASKS, headers=auth(token), params={"page_size": 101}), 400, 1470421)
    assert_error(client.get(TASKS, headers=auth(token), params={"page_token": "nope"}), 400, 1470422)
    assert_error(client.get(TASKS, headers=auth(token), params={"start_create_time": "x"}), 400, 99992402)


# ---------------------------------------------------------------------- mutations and stats


def test_mutations_are_visible(client: httpx.Client, sim: Simulator) -> None:
    world = World.generate(tasks=20, seed=3)
    with (
        Simulator(world, app_id=APP_ID, app_secret=APP_SECRET) as own,
        httpx.Client(base_url=own.base_url) as c,
    ):
        token = get_token(c)
        task = world.task_ids()[5]

        def listed(t: str = task) -> list[str]:
            return [i["id"] for i in all_pages(c, followers_url(t), token)]

        before = world.task(task)["update_time"]
        added = world.add_follower(task)
        assert listed()[-1] == added and added in world.followers(task)
        world.remove_follower(task, added)
        assert added not in listed()
        assert world.task(task)["update_time"] == before
        world.bump_update_time_on_follow_change = True
        world.add_follower(task, 0)
        assert int(world.task(task)["update_time"]) > int(before)
        world.remove_all_followers(task)
        assert c.get(followers_url(task), headers=auth(token)).json()["data"] == {
            "items": [],
            "has_more": False,
        }

        new = world.add_task(followers=4, create_time=2_000_000_000)
        assert len(listed(new)) == 4
        assert all_pages(c, TASKS, token, page_size=100)[-1]["id"] == new
        stamp = world.touch(new)
        got = c.get(f"{TASKS}/{new}", headers=auth(token)).json()["data"]["task"]
        assert got["update_time"] == str(stamp) and stamp > 2_000_000_000
        world.set_forbidden(new, True)
        assert_error(c.get(followers_url(new), headers=auth(token)), 400, 1470432)
        world.set_forbidden(new, False)
        assert len(listed(new)) == 4


def test_stats_and_control_endpoints(sim: Simulator, client: httpx.Client) -> None:
    token = get_token(client)
    url = followers_url(sim.world.task_ids()[0])
    for _ in range(4):
        client.get(url, headers=auth(token))
    client.get(url)
    client.get("/nowhere")
    stats = sim.stats.as_dict()
    assert stats["business_requests"] == 5 and stats["token_requests"] == 1
    assert stats["by_status"] == {200: 4, 400: 1}
    assert stats["by_endpoint"] == {"token": 1, "followers": 5, "not_found": 1}
    assert sum(stats["per_second"].values()) == 5
    remote = client.get("/_sim/stats").json()
    assert remote["business_requests"] == 5 and remote["by_status"] == {"200": 4, "400": 1}
    client.post("/_sim/reset_stats")
    assert sim.stats.business_requests == 0
    client.post("/_sim/faults", json={"quota_per_second": 1, "always_fail_tasks": ["x"]})
    assert sim.faults.quota_per_second == 1 and sim.faults.always_fail_tasks == {"x"}


def test_bad_answer_faults_are_set_as_json_and_deterministic(sim: Simulator, client: httpx.Client) -> None:
    token = get_token(client)
    task = sim.world.task_ids()[0]
    set_faults = client.post("/_sim/faults", json={"page_faults": {task: {"kind": "id_bool", "times": 1}}})
    assert set_faults.json()["page_faults"] == {task: {"kind": "id_bool", "page": 1, "times": 1}}
    spoiled = client.get(followers_url(task), headers=auth(token)).json()["data"]
    assert spoiled["items"][0]["id"] is True
    assert client.get(followers_url(task), headers=auth(token)).json()["data"]["items"][0]["id"] != True  # noqa: E712
    assert client.post("/_sim/faults", json={"page_faults": {task: {"kind": "nonsense"}}}).status_code == 400

    def answers(faults: Faults, count: int = 40) -> list[tuple[int, str, bytes]]:
        sim.faults = faults
        out = []
        for _ in range(count):
            with client.stream("GET", followers_url(task), headers=auth(token)) as r:
                raw = b"".join(r.iter_raw())  # undecoded: bad_gzip must not raise here
                out.append((r.status_code, r.headers["content-type"], raw))
        return out

    first = answers(Faults(bad_answer_fraction=0.5, seed=9))
    assert first == answers(
        Faults(bad_answer_fraction=0.5, seed=9)
    )  # same seed: same bad answers, same order
    normal = answers(Faults(), 1)[0]
    assert 10 < sum(answer != normal for answer in first) < 30


def test_token_faults_count_down(sim: Simulator, client: httpx.Client) -> None:
    sim.faults = Faults(
        token_rate_limit_times=1, token_error_500_times=1, token_bad_body_times=1, token_expire="zero"
    )
    answer = {"app_id": APP_ID, "app_secret": APP_SECRET}
    limited = client.post(TOKEN_PATH, json=answer)
    assert (limited.status_code, limited.json()["code"]) == (429, 99991400)
    assert limited.headers["x-ogw-ratelimit-reset"] == "1"
    assert client.post(TOKEN_PATH, json=answer).status_code == 500
    assert client.post(TOKEN_PATH, json=answer).headers["content-type"].startswith("text/html")
    issued = client.post(TOKEN_PATH, json=answer).json()
    assert issued["code"] == 0 and issued["expire"] == 0
