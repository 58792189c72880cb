"""Feishu's page-token pagination, shared by the follower and task list endpoints, always bounded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .endpoints import Endpoint
from .errors import ProtocolError
from .pages import ListPage, PageParser

if TYPE_CHECKING:
    from .client import FeishuClient

T = TypeVar("T")


@dataclass(frozen=True)
class PagingBounds:
    """How far one listing may go before the server is taken to be paging forever.

    ``setting`` names the option that raises the bound, for the message.
    """

    max_pages: int
    max_seconds: float
    setting: str = "max_pages_per_task / max_seconds_per_task"


async def iter_pages(
    client: FeishuClient,
    path: str,
    params: dict[str, Any],
    parse: PageParser[T],
    bounds: PagingBounds,
    endpoint: Endpoint,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[ListPage[T]]:
    """Every page until ``has_more`` is false; raises ProtocolError past the bounds.

    Each page is checked by ``parse`` before it is yielded (``has_more`` true always comes
    with a non-empty page token). A token the server already handed out would loop forever.
    """
    started = clock()
    seen_tokens: set[str] = set()
    page_token = ""
    pages = 0
    while True:
        query = dict(params, page_token=page_token) if page_token else params
        page = await client.get(path, query, parse, endpoint)
        pages += 1
        yield page
        if not page.has_more:
            return
        next_token = page.page_token
        if next_token in seen_tokens or next_token == page_token:
            raise ProtocolError(
                f"repeated page token: page {pages} hands out a token the server gave before", page.log_id
            )
        if pages >= bounds.max_pages:
            raise ProtocolError(
                f"stopped after {pages} pages: the server still says has_more (the bound is "
                f"{bounds.max_pages} pages; see {bounds.setting})",
                page.log_id,
            )
        if clock() - started > bounds.max_seconds:
            raise ProtocolError(
                f"stopped after {pages} pages and {clock() - started:.0f} s: the server still says has_more "
                f"(the bound is {bounds.max_seconds:g} s; see {bounds.setting})",
                page.log_id,
            )
        seen_tokens.add(next_token)
        page_token = next_token
