"""Reading Feishu's answers: JSON envelope or not, and the headers that matter."""

from __future__ import annotations

import json

import httpx


def parse_json_body(response: httpx.Response) -> dict | None:
    """The decoded JSON object, or None for gateway pages (HTML, plain text) and garbage."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def log_id_of(response: httpx.Response, body: dict | None) -> str | None:
    """The request's log id: the ``X-Tt-Logid`` header, else the error body's ``error.log_id``."""
    header = response.headers.get("x-tt-logid")
    if header:
        return header
    error = (body or {}).get("error")
    if isinstance(error, dict) and error.get("log_id"):
        return str(error["log_id"])
    return None


def float_header(response: httpx.Response, name: str) -> float | None:
    """A numeric header such as ``x-ogw-ratelimit-reset``, or None when absent or malformed."""
    raw = response.headers.get(name)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
