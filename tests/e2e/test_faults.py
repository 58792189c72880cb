"""Per-task errors are data; transient faults are retried; the run always goes on."""

from __future__ import annotations

import threading

import pytest

from feishu_simulator import World

from .conftest import DATASET, Loader, answered, on_every_destination, truth, wait_until


def test_error_codes_are_recorded_and_the_run_goes_on(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    forbidden, failing, looping = ids[0], ids[1], next(t for t in ids[2:] if len(world.followers(t)) > 50)
    world.set_forbidden(forbidden, True)
    loader.sim.faults.always_fail_tasks = {failing}
    loader.sim.faults.repeat_page_token_tasks = {looping}
    unknown = "00000000-0000-4000-8000-000000000000"
    result = loader.run([*ids, unknown, "bad id"], max_attempts=3)
    statuses = loader.statuses()
    assert statuses[forbidden] == "no_permission"
    assert statuses[unknown] == "invalid_task"
    assert statuses["bad id"] == "invalid_task"
    assert statuses[failing] == "failed"
    assert statuses[looping] == "failed"
    rows = {
        row[0]: row[1:]
        for row in loader.query(
            f"select task_id, error_code, error_msg, log_id from {DATASET}.task_fetch_status"
        )
    }
    assert rows[forbidden][0] == 1470432 and rows[forbidden][2]
    assert rows[unknown][0] == 1470602 and rows[unknown][2]
    assert rows[failing][0] == 1470605 and "3 attempts" in rows[failing][1]
    assert "repeated page token" in rows[looping][1]
    good = [t for t in ids if t not in (forbidden, failing, looping)]
    assert loader.followers() == truth(world, good)
    assert result.stats.tasks_by_status["ok"] == len(good)


@on_every_destination
def test_a_failing_task_keeps_its_rows_and_last_success(loader: Loader, world: World) -> None:
    ids = world.task_ids()[:10]
    task = next(t for t in ids if world.followers(t))
    loader.run(ids)
    before = loader.followers()[task]
    (first_ok,) = loader.query(
        f"select last_ok_at from {DATASET}.task_fetch_status where task_id = '{task}'"
    )[0]
    world.remove_all_followers(task)
    loader.sim.faults.always_fail_tasks = {task}
    loader.run(ids, max_attempts=2)
    assert loader.followers()[task] == before
    assert loader.query(
        f"select status, last_ok_at from {DATASET}.task_fetch_status where task_id = '{task}'"
    ) == [("failed", first_ok)]
    loader.sim.faults.always_fail_tasks = set()
    world.set_forbidden(task, True)
    loader.run([task])
    assert loader.followers()[task] == before  # no permission now: still an error, still no deletion


@pytest.mark.parametrize("token_http_status", [400, 200])
def test_token_expiry_in_the_middle_of_a_run(loader: Loader, world: World, token_http_status: int) -> None:
    ids = world.task_ids()
    loader.sim.faults.latency_ms = 100  # ~47 requests, 2 at a time
    loader.sim.faults.token_error_http_status = token_http_status
    expired_after: list[int] = []  # followers requests answered when the tokens were expired

    def expire_once_fetching() -> None:
        wait_until(lambda: answered(loader.sim) >= 3, "the run never started fetching")
        loader.sim.expire_tokens()
        expired_after.append(answered(loader.sim))

    expirer = threading.Thread(target=expire_once_fetching, daemon=True)
    expirer.start()
    result = loader.run(ids, concurrency=2)
    expirer.join(timeout=60)
    assert expired_after and expired_after[0] < answered(loader.sim), "the run must outlive the token"
    assert loader.followers() == truth(world, ids)
    assert result.stats.token_refreshes >= 1
    assert loader.sim.stats.as_dict()["token_requests"] >= 2


def test_short_token_lifetime_is_refreshed_before_expiry(loader: Loader, world: World) -> None:
    loader.sim.faults.token_ttl_seconds = 2
    loader.sim.faults.latency_ms = 50
    ids = world.task_ids()
    result = loader.run(ids, concurrency=2)
    assert loader.followers() == truth(world, ids)
    assert loader.sim.stats.as_dict()["token_requests"] >= 2
    assert result.stats.tasks_by_status == {"ok": len(ids)}


def test_429_storm(loader: Loader, world: World) -> None:
    loader.sim.faults.rate_limit_fraction = 0.4
    loader.sim.faults.storm_reset_seconds = 0
    ids = world.task_ids()
    result = loader.run(ids)
    assert loader.followers() == truth(world, ids)
    assert result.stats.rate_limited > 5
    assert set(loader.statuses().values()) == {"ok"}


def test_quota_windows_with_http_400_variant(loader: Loader, world: World) -> None:
    loader.sim.faults.quota_per_second = 20
    loader.sim.faults.rate_limit_http_status = 400  # some older APIs answer 400 with 99991400
    ids = world.task_ids()[:25]
    result = loader.run(ids, max_rps=0)  # our own pacing off: the server's 429s must be handled
    assert loader.followers() == truth(world, ids)
    assert result.stats.rate_limited >= 1


def test_pacing_keeps_under_the_quota(loader: Loader, world: World) -> None:
    loader.sim.faults.quota_per_second = 20
    ids = world.task_ids()[:30]
    result = loader.run(ids, max_rps=20)
    assert loader.followers() == truth(world, ids)
    assert result.stats.rate_limited == 0
    assert loader.sim.stats.as_dict()["rate_limited"] == 0


def test_5xx_and_html_502_are_retried(loader: Loader, world: World) -> None:
    loader.sim.faults.error_500_fraction = 0.2
    loader.sim.faults.html_502_fraction = 0.15
    ids = world.task_ids()
    result = loader.run(ids, max_attempts=8)
    assert loader.followers() == truth(world, ids)
    assert result.stats.retries > 5
    assert set(loader.statuses().values()) == {"ok"}


def test_transient_failures_then_success(loader: Loader, world: World) -> None:
    task = world.task_ids()[5]
    loader.sim.faults.fail_first_n_requests_for = {task: 3}
    loader.run([task], max_attempts=4)
    assert loader.statuses() == {task: "ok"}


def test_a_page_token_on_the_last_page_is_ignored(loader: Loader, world: World) -> None:
    loader.sim.faults.page_token_on_last_page = True
    ids = world.task_ids()
    loader.run(ids)
    assert loader.followers() == truth(world, ids)
    assert set(loader.statuses().values()) == {"ok"}


def test_has_more_with_an_empty_token_fails_the_task_and_keeps_its_rows(loader: Loader, world: World) -> None:
    """A protocol violation, not the last page: never ``ok`` with the followers of the pages so far."""
    ids = world.task_ids()
    loader.run(ids)
    before = loader.followers()
    for task in ids[:5]:  # so that a task emptied or cut short would show
        for follower in world.followers(task)[:2]:
            world.remove_follower(task, follower)
    loader.sim.faults.omit_has_more_with_empty_token = True  # every task's last page
    loader.run(ids, max_attempts=2)
    assert loader.followers() == before
    assert set(loader.statuses().values()) == {"failed"}
    messages = {row[0] for row in loader.query(f"select error_msg from {DATASET}.task_fetch_status")}
    assert messages == {
        "malformed answer (2 attempts): data.has_more is true but data.page_token is an empty string"
    }


def test_user_access_token(loader: Loader, world: World) -> None:
    from .conftest import USER_TOKEN

    ids = world.task_ids()[:5]
    loader.run(ids, user_access_token=USER_TOKEN)
    assert loader.followers() == truth(world, ids)
