"""A scripted Feishu for unit tests of the fetch: answers by path, no network, no pacing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from feishu_tasks.auth import UserToken
from feishu_tasks.client import ClientSettings, FeishuClient
from feishu_tasks.ratelimit import Pacing
from feishu_tasks.retry import RetryPolicy
from feishu_tasks.stats import FetchStats
from feishu_tasks.transport import Reply

NO_WAIT = RetryPolicy(max_attempts=2, backoff_base_seconds=0.0, max_rate_limit_waits=1)


def answer(data: Any = None, code: int = 0, status: int = 200, msg: str = "success") -> Reply:
    body: dict[str, Any] = {"code": code, "msg": msg}
    if data is not None:
        body["data"] = data
    return Reply(status, httpx.Headers({}), json.dumps(body).encode())


def follower_page(*ids: str) -> Reply:
    return answer({"items": [{"id": i} for i in ids], "has_more": False})


class RoutedHttp:
    """Answers each GET by its path: a Reply, or a callable of the query parameters."""

    def __init__(self, routes: dict[str, Reply | Callable[[dict[str, Any]], Reply]]) -> None:
        self.routes = routes
        self.paths: list[str] = []

    async def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Reply:
        self.paths.append(path)
        route = self.routes.get(path)
        if route is None:
            return answer(code=1470602, status=400, msg="task not found")
        return route(params) if callable(route) else route


def connect_to(http: RoutedHttp) -> Callable[..., Any]:
    """A ``FetchScheduler`` connect function that talks to ``http`` instead of a server."""

    @asynccontextmanager
    async def connect(
        settings: ClientSettings, stats: FetchStats, max_requests: int | None
    ) -> AsyncIterator[FeishuClient]:
        yield FeishuClient(
            http, UserToken("u-test"), Pacing(None, None), NO_WAIT, stats, max_requests, base_url="http://s"
        )

    return connect


def followers_path(task_id: str) -> str:
    return f"/open-apis/task/v1/tasks/{task_id}/followers"
