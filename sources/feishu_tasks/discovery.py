"""Listing the tasks the token can see (``GET /open-apis/task/v1/tasks``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .client import FeishuClient
from .endpoints import LIST_TASKS
from .pages import parse_tasks_page
from .pagination import iter_pages
from .settings import TASKS_PAGE_SIZE


async def iter_task_pages(
    client: FeishuClient, user_id_type: str, start_create_time: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Task objects (each with a string ``id``), a page at a time, within ``client.listing_bounds``.

    A failure raises the TaskError; the caller decides what it means for the run.
    """
    params: dict[str, Any] = {"page_size": TASKS_PAGE_SIZE, "user_id_type": user_id_type}
    if start_create_time is not None:
        params["start_create_time"] = str(int(start_create_time))
    pages = iter_pages(client, LIST_TASKS.path(), params, parse_tasks_page, client.listing_bounds, LIST_TASKS)
    async for page in pages:
        yield page.items
