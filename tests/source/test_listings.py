"""Reading task lists, on a scripted Feishu: which lists, in what order, and what each outcome says."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from feishu_tasks.client import ClientSettings, FeishuClient
from feishu_tasks.errors import FatalError
from feishu_tasks.items import FetchItem, TasklistDone, TasklistsListed
from feishu_tasks.listings import ListReading
from feishu_tasks.stats import FetchStats

from .scripted import RoutedHttp, answer, connect_to

L1, L2, L3 = (f"aaaaaaa{n}-0000-4000-8000-00000000000{n}" for n in range(1, 4))
T1, T2, T3 = (f"bbbbbbb{n}-0000-4000-8000-00000000000{n}" for n in range(1, 4))
TASKLISTS = "/open-apis/task/v2/tasklists"


def tasks_of(*guids: str) -> Any:
    return answer({"items": [{"guid": g, "summary": f"task {g[:7]}"} for g in guids], "has_more": False})


def visible(*guids: str) -> Any:
    return answer({"items": [{"guid": g, "name": f"list {g[:8]}"} for g in guids], "has_more": False})


def read(
    http: RoutedHttp, guids: list[str], all_tasklists: bool
) -> tuple[list[FetchItem], list[tuple[str, str]], ListReading]:
    emitted: list[FetchItem] = []
    queued: list[tuple[str, str]] = []

    async def main() -> ListReading:
        async with connect_to(http)(ClientSettings("http://s"), FetchStats(), None) as client:
            assert isinstance(client, FeishuClient)

            async def emit(item: FetchItem) -> None:
                emitted.append(item)

            async def enqueue(task_id: str, reason: str) -> None:
                queued.append((task_id, reason))

            reading = ListReading(client, "open_id", emit, enqueue, lambda: None)
            await reading.run(guids, all_tasklists, None)
            return reading

    return emitted, queued, asyncio.run(main())


def test_every_visible_list_is_read_in_order_and_its_tasks_queued() -> None:
    http = RoutedHttp(
        {
            TASKLISTS: visible(L1, L2),
            f"{TASKLISTS}/{L1}/tasks": tasks_of(T1, T2, T1),  # a task listed twice is in the list once
            f"{TASKLISTS}/{L2}/tasks": tasks_of(T3),
        }
    )
    emitted, queued, _ = read(http, [], all_tasklists=True)
    assert [type(item) for item in emitted] == [TasklistsListed, TasklistDone, TasklistDone]
    done = [item.outcome for item in emitted if isinstance(item, TasklistDone)]
    assert [(o.guid, o.status, o.task_guids) for o in done] == [(L1, "ok", [T1, T2]), (L2, "ok", [T3])]
    assert queued == [(T1, "tasklist"), (T2, "tasklist"), (T3, "tasklist")]


def test_named_lists_keep_only_their_own_rows_and_a_bad_guid_costs_no_request() -> None:
    http = RoutedHttp({TASKLISTS: visible(L1, L2), f"{TASKLISTS}/{L2}/tasks": tasks_of(T1)})
    emitted, queued, _ = read(http, [L2, "not-a-guid"], all_tasklists=False)
    listed = [item for item in emitted if isinstance(item, TasklistsListed)]
    assert [row["guid"] for item in listed for row in item.tasklists] == [L2]
    statuses = {item.outcome.guid: item.outcome.status for item in emitted if isinstance(item, TasklistDone)}
    assert statuses == {"not-a-guid": "not_found", L2: "ok"}
    assert not any("not-a-guid" in path for path in http.paths)
    assert queued == [(T1, "tasklist")]


def test_a_forbidden_list_is_data_and_nothing_readable_says_what_to_grant() -> None:
    forbidden = answer(code=1470403, status=403, msg="no permission")
    http = RoutedHttp({TASKLISTS: visible(L1), f"{TASKLISTS}/{L1}/tasks": forbidden})
    emitted, queued, reading = read(http, [], all_tasklists=True)
    (done,) = [item.outcome for item in emitted if isinstance(item, TasklistDone)]
    assert (done.status, done.error_code, done.tasks) == ("no_permission", 1470403, [])
    assert queued == []
    assert "add the app as a member" in (reading.nothing_readable() or "")


def test_no_visible_lists_at_all_is_fatal_only_without_named_lists() -> None:
    refused = answer(code=1470400, status=400, msg="bad request")
    with pytest.raises(FatalError, match="task:tasklist:read"):
        read(RoutedHttp({TASKLISTS: refused}), [], all_tasklists=True)
    emitted, _, _ = read(RoutedHttp({TASKLISTS: refused, f"{TASKLISTS}/{L3}/tasks": tasks_of()}), [L3], True)
    assert [item.outcome.status for item in emitted if isinstance(item, TasklistDone)] == ["ok"]
