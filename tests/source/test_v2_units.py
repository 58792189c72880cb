"""Task v2 and task lists, one function each: pages, codes per API version, pacing, rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from feishu_tasks.endpoints import FOLLOWERS, GET_TASK, TASKLIST_TASKS, parse_endpoint_limits
from feishu_tasks.errors import ConfigError
from feishu_tasks.pages import MISSING, PageError, parse_task_followers_v2, parse_tasklists_page
from feishu_tasks.ratelimit import Pacing
from feishu_tasks.responses import Fatal, TaskFailed, Transient, classify
from feishu_tasks.rows import tasklist_row, tasklist_task_rows, unix_ms_to_timestamp
from feishu_tasks.tables import TOMBSTONE


def member(member_id: Any, role: Any = "follower", kind: Any = "user") -> dict[str, Any]:
    return {"id": member_id, "role": role, "type": kind}


@pytest.mark.parametrize(
    ("members", "followers"),
    [
        ([], []),
        (MISSING, []),
        (
            [member("ou_a"), member("ou_b", "assignee"), member("cli_x", kind="app")],
            [("ou_a", "user"), ("cli_x", "app")],
        ),
        ([member("ou_a", "assignee"), member("ou_a")], [("ou_a", "user")]),  # both roles: one follow
        ([{"id": "ou_a", "role": "follower"}], [("ou_a", None)]),  # no type: null, never a guess
    ],
)
def test_v2_followers_are_the_members_whose_role_is_follower(members: Any, followers: list[Any]) -> None:
    task: dict[str, Any] = {"guid": "g"} if members is MISSING else {"guid": "g", "members": members}
    page = parse_task_followers_v2({"task": task})
    assert [(f.id, f.member_type) for f in page.items] == followers
    assert not page.has_more


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (MISSING, "data is missing"),
        ({"task": None}, "data.task is null, not an object"),
        ({"task": {"members": {}}}, "data.task.members is an object, not a list"),
        ({"task": {"members": ["ou_a"]}}, "data.task.members[0] is a string, not an object"),
        ({"task": {"members": [member(True)]}}, "data.task.members[0].id is true, not a non-empty string"),
        ({"task": {"members": [member("ou_a", None)]}}, "data.task.members[0].role is null"),
        ({"task": {"members": [member("ou_a", kind=7)]}}, "data.task.members[0].type is 7"),
    ],
)
def test_a_malformed_v2_task_is_never_half_read(data: Any, reason: str) -> None:
    with pytest.raises(PageError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_task_followers_v2(data)


def test_list_pages_need_a_guid_on_every_item() -> None:
    assert parse_tasklists_page({"items": [{"guid": "a"}], "has_more": False}).items == [{"guid": "a"}]
    with pytest.raises(PageError, match=r"data.items\[1\].guid is missing"):
        parse_tasklists_page({"items": [{"guid": "a"}, {"name": "x"}]})


def answer(code: int, status: int = 400) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps({"code": code, "msg": "m"}).encode()


@pytest.mark.parametrize(
    ("code", "status", "v1", "v2"),
    [
        (1470403, 403, Fatal, TaskFailed),  # v1: neither a user nor a tenant token; v2: no permission
        (1470404, 404, TaskFailed, TaskFailed),
        (1470500, 500, Transient, Transient),
        (1470500, 200, TaskFailed, Transient),  # v2's server error, even when the status says 200
        (1470605, 200, Transient, TaskFailed),  # v1's server error
    ],
)
def test_codes_are_read_per_api_version(code: int, status: int, v1: type, v2: type) -> None:
    assert type(classify(*answer(code, status), FOLLOWERS.family)) is v1
    assert type(classify(*answer(code, status), GET_TASK.family)) is v2


def test_each_endpoint_is_paced_at_the_lower_of_its_quota_and_the_run_ceiling() -> None:
    pacing = Pacing(50, 1000)
    assert pacing.limits(FOLLOWERS) == (50, 1000)
    assert pacing.limits(GET_TASK) == (10, 600)  # documented lower
    assert Pacing(5, 100).limits(GET_TASK) == (5, 100)
    assert Pacing(None, None).limits(TASKLIST_TASKS) == (None, None)  # pacing off
    overridden = Pacing(50, 1000, {"get_task_v2": (20, None)})
    assert overridden.limits(GET_TASK) == (20, None)
    assert overridden.limiter(GET_TASK) is overridden.limiter(GET_TASK)
    assert overridden.limiter(GET_TASK) is not overridden.limiter(FOLLOWERS)


def test_endpoint_limits_from_config() -> None:
    assert parse_endpoint_limits({"get_task_v2": [20, None]}) == {"get_task_v2": (20, None)}
    assert parse_endpoint_limits(None) == {}
    with pytest.raises(ConfigError, match="unknown endpoint 'get_task'"):
        parse_endpoint_limits({"get_task": [1, 2]})
    with pytest.raises(ConfigError, match="expected \\[per second, per minute\\]"):
        parse_endpoint_limits({"get_task_v2": [1]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1767225600000", datetime(2026, 1, 1, tzinfo=UTC)),
        (1767225600000, datetime(2026, 1, 1, tzinfo=UTC)),
        ("0", None),
        (0, None),
        ("", None),
        (None, None),
        (True, None),
        ("soon", None),
        ("9" * 30, None),
    ],
)
def test_v2_milliseconds(value: Any, expected: datetime | None) -> None:
    assert unix_ms_to_timestamp(value) == expected


def test_tasklist_rows_never_store_a_repr() -> None:
    row = tasklist_row({"guid": "g", "name": ["not", "a", "name"], "creator": {"id": 5}, "archive_msec": "0"})
    assert row["name"] is None and row["creator_id"] is None and row["archived_at"] is None
    tasks = tasklist_task_rows(
        "g", [{"guid": "t", "summary": 3, "subtask_count": "2", "due": {"timestamp": 0}}]
    )
    assert tasks[0]["summary"] is None and tasks[0]["subtask_count"] == 2 and tasks[0]["due_at"] is None
    assert tasklist_task_rows("g", []) == [{"tasklist_guid": "g", "task_guid": "", TOMBSTONE: True}]


def test_a_count_past_64_bits_is_null() -> None:
    [row] = tasklist_task_rows("g", [{"guid": "t", "subtask_count": 10**30}])
    assert row["subtask_count"] is None  # no destination could store it
