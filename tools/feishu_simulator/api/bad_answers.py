"""Answers that a real API, or a proxy in front of it, can give and that a client must survive.

Two families (the kinds are listed in faults.py): a *page* kind keeps Feishu's envelope but
breaks the page inside it (``spoil_page``); a *body* kind replaces the whole HTTP answer
(``bad_body_response``). Both are deterministic: the same kind on the same answer gives the
same bytes.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..faults import BODY_KINDS

Answer = tuple[int, dict[str, Any]]

PROXY_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=/login>"
    b"<p>Your session has expired. Please sign in again.</p></form></body></html>"
)
NOT_TEXT = bytes(range(256))
NOT_GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03this is not deflate data at all"
JSON_TYPE = "application/json; charset=utf-8"


def _first_item(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    """A page spoiler that replaces the first item (or adds one to an empty page)."""

    def spoil(data: dict[str, Any]) -> None:
        items = list(data.get("items") or [])
        first = items[0] if items and isinstance(items[0], dict) else {"id": "ou_spoiled_item"}
        data["items"] = [change(dict(first)), *items[1:]]

    return spoil


def _set(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def spoil(data: dict[str, Any]) -> None:
        data.update(fields)

    return spoil


def _more_without_token(data: dict[str, Any]) -> None:
    data["has_more"] = True
    data.pop("page_token", None)


def _bare_string_item(data: dict[str, Any]) -> None:
    data["items"] = ["ou_bare_string", *list(data.get("items") or [])[1:]]


# Each spoiler edits a copy of the page's ``data`` in place.
_DATA_SPOILERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "more_without_token": _more_without_token,
    "more_empty_token": _set(has_more=True, page_token=""),
    "items_not_list": _set(items="ou_not_a_list"),
    "items_null": _set(items=None),
    "has_more_not_bool": _set(has_more="false"),
    "page_token_list": _set(has_more=True, page_token=["cGFnZTI", "cGFnZTM"]),
    "item_not_object": _bare_string_item,
    "id_null": _first_item(lambda item: {**item, "id": None}),
    "id_number": _first_item(lambda item: {**item, "id": 12345}),
    "id_bool": _first_item(lambda item: {**item, "id": True}),
    "id_list": _first_item(lambda item: {**item, "id": ["ou_a", "ou_b"]}),
    "id_object": _first_item(lambda item: {**item, "id": {"open_id": "ou_a"}}),
    "id_empty": _first_item(lambda item: {**item, "id": ""}),
    "id_list_not_list": _first_item(lambda item: {**item, "id_list": "ou_not_a_list"}),
    "id_list_bad_value": _first_item(lambda item: {**item, "id_list": ["ou_x", 7, None]}),
}


def spoil_page(answer: Answer, kind: str) -> Answer:
    """The answer with its page broken as ``kind`` says; error answers are left alone."""
    status, body = answer
    if status != 200 or body.get("code") != 0 or not isinstance(body.get("data"), dict):
        return answer
    body = copy.deepcopy(body)
    if kind == "data_null":
        body["data"] = None
    elif kind == "data_missing":
        del body["data"]
    elif kind == "data_not_object":
        body["data"] = [body["data"]]
    else:
        _DATA_SPOILERS[kind](body["data"])
    return status, body


def is_body_kind(kind: str) -> bool:
    return kind in BODY_KINDS


async def bad_body_response(
    request: web.Request, kind: str, answer: Answer, log_id: str, trickle_interval: float
) -> web.StreamResponse:
    """The whole HTTP answer for a body kind, built around the real ``answer``."""
    payload = json.dumps(answer[1], ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": JSON_TYPE, "X-Tt-Logid": log_id}
    if kind == "trickle":
        return await _trickle(request, payload, headers, trickle_interval)
    body = {
        "html": PROXY_PAGE,
        "truncated_json": payload[: len(payload) // 2],
        "json_array": b"[" + payload + b"]",
        "bad_gzip": NOT_GZIP,
        "empty": b"",
        "binary": NOT_TEXT,
        "no_code": json.dumps({k: v for k, v in answer[1].items() if k != "code"}).encode(),
    }[kind]
    if kind == "html":
        headers["Content-Type"] = "text/html; charset=utf-8"
    elif kind == "bad_gzip":
        headers["Content-Encoding"] = "gzip"
    elif kind == "binary":
        headers["Content-Type"] = "application/octet-stream"
    return web.Response(status=200, body=body, headers=headers)


async def _trickle(
    request: web.Request, payload: bytes, headers: dict[str, str], interval: float
) -> web.StreamResponse:
    """Headers at once, then the body one byte every ``interval`` seconds until done or hung up."""
    response = web.StreamResponse(status=200, headers={**headers, "Content-Length": str(len(payload))})
    await response.prepare(request)
    try:
        for index in range(len(payload)):
            await response.write(payload[index : index + 1])
            await asyncio.sleep(interval)
        await response.write_eof()
    except (ConnectionError, RuntimeError):  # the client gave up: the point of the exercise
        pass
    return response
