"""Feishu's page-token pagination, shared by the follower and task list endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .client import FeishuClient, Page
from .errors import ProtocolError


async def iter_pages(client: FeishuClient, path: str, params: dict[str, Any]) -> AsyncIterator[Page]:
    """Every page, stopping on ``has_more`` false OR a missing/empty page token.

    A token the server already handed out would make us loop forever: that is a server
    fault, raised as ProtocolError.
    """
    seen_tokens: set[str] = set()
    page_token = ""
    while True:
        query = dict(params, page_token=page_token) if page_token else params
        page = await client.get(path, query)
        yield page
        next_token = page.data.get("page_token") or ""
        if not page.data.get("has_more") or not next_token:
            return
        if next_token in seen_tokens or next_token == page_token:
            raise ProtocolError(
                f"the server repeated page token {next_token[:16]!r} after {len(seen_tokens) + 1} pages",
                page.log_id,
            )
        seen_tokens.add(next_token)
        page_token = next_token
