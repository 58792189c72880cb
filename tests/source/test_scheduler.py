"""The fetch's scheduling, on a scripted Feishu: order, admission, batches, stops, dry runs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from feishu_tasks.client import ClientSettings
from feishu_tasks.control import RunControl, RunInputs
from feishu_tasks.errors import FatalError
from feishu_tasks.items import FetchItem, OutcomeBatch
from feishu_tasks.scheduler import Admission, FetchPlan, FetchScheduler

from .scripted import RoutedHttp, answer, connect_to, follower_page, followers_path

A, B, C, D = (f"{n}0000000-0000-4000-8000-00000000000{n}" for n in range(1, 5))


def fetch(plan: FetchPlan, http: RoutedHttp, control: RunControl | None = None) -> list[FetchItem]:
    """Run one scheduler to its end; what it emitted, in order."""
    control = control or RunControl()
    scheduler = FetchScheduler(plan, ClientSettings("http://s", concurrency=2), control, connect_to(http))
    emitted: list[FetchItem] = []

    async def emit(item: FetchItem) -> None:
        emitted.append(item)

    asyncio.run(scheduler.run(emit, threading.Event()))
    return emitted


def outcomes(items: list[FetchItem]) -> dict[str, Any]:
    return {o.task_id: o for item in items if isinstance(item, OutcomeBatch) for o in item.outcomes}


def test_given_ids_are_fetched_once_each_and_a_malformed_one_without_a_request() -> None:
    http = RoutedHttp({followers_path(A): follower_page("ou_1", "ou_2"), followers_path(B): follower_page()})
    control = RunControl()
    done = outcomes(fetch(FetchPlan([A, B, A.upper(), "not-a-task"]), http, control))
    assert {task: o.status for task, o in done.items()} == {A: "ok", B: "ok", "not-a-task": "invalid_task"}
    assert [f.id for f in done[A].followers] == ["ou_1", "ou_2"]
    assert sorted(http.paths) == sorted([followers_path(A), followers_path(B)])  # the duplicate: once
    assert control.report.stats.tasks_queued == 3 and control.report.stats.followers == 2


def test_outcomes_are_batched_by_rows() -> None:
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(10)]
    http = RoutedHttp({followers_path(task): follower_page("ou_1", "ou_2") for task in ids})
    batches = [item for item in fetch(FetchPlan(ids, batch_rows=6), http) if isinstance(item, OutcomeBatch)]
    assert sum(len(batch.outcomes) for batch in batches) == 10
    assert all(batch.rows == 3 * len(batch.outcomes) for batch in batches)  # two followers and the task
    assert all(batch.rows >= 6 for batch in batches[:-1])


def test_the_request_cap_admits_whole_tasks_in_order_and_leaves_the_rest() -> None:
    http = RoutedHttp({followers_path(task): follower_page("ou_1") for task in (A, B, C)})
    plan = FetchPlan([A, B, C], max_requests=2, expected_pages={B: 5})
    control = RunControl()
    done = outcomes(fetch(plan, http, control))
    assert list(done) == [A]  # B does not fit after A, and nothing after B starts (its turn comes first)
    assert control.report.stats.skipped_by_budget == 2


def test_admission_gives_a_task_bigger_than_the_cap_its_turn_when_it_comes_first() -> None:
    admission = Admission(max_requests=3)
    assert admission.admit(10)
    assert not admission.admit(1)
    assert Admission(None).admit(10**9)


def test_a_stop_before_the_start_fetches_nothing() -> None:
    http = RoutedHttp({followers_path(A): follower_page("ou_1")})
    inputs = RunInputs()
    inputs.stop.set()
    control = RunControl(inputs=inputs)
    fetch(FetchPlan([A, B]), http, control)
    assert http.paths == []


def test_a_dry_run_plans_in_order_without_fetching_followers() -> None:
    http = RoutedHttp({})
    control = RunControl(inputs=RunInputs(dry_run=True))
    items = fetch(FetchPlan([A, "bad"], sweep_task_ids=[B, A]), http, control)
    assert control.report.planned == [(A, "given"), (B, "stale")]
    assert http.paths == []
    assert list(outcomes(items)) == ["bad"]  # an invalid id is known without a request


def test_auto_reads_v2_only_for_a_list_task_that_v1_calls_invalid() -> None:
    v2 = answer({"task": {"guid": A, "members": [{"id": "cli_app", "role": "follower", "type": "app"}]}})
    http = RoutedHttp({f"/open-apis/task/v2/tasks/{A}": v2, f"/open-apis/task/v2/tasks/{B}": v2})
    done = outcomes(fetch(FetchPlan([B], followers_api="auto", sweep_task_ids=[A]), http))
    assert done[B].status == "invalid_task" and done[B].api == "v1"  # given, not from a list: no v2 try
    assert done[A].status == "invalid_task"  # stale, not from a list: v1 only


def test_a_fatal_answer_ends_the_run_with_its_own_error() -> None:
    refused = answer(code=1470403, status=403, msg="wrong token type")
    http = RoutedHttp({followers_path(A): refused, followers_path(B): refused})
    with pytest.raises(FatalError, match="neither a user nor a tenant token"):
        fetch(FetchPlan([A, B]), http)
