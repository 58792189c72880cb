"""What every handler family shares: an answer before it is JSON, and a route to one.

A business handler is synchronous, ``(request, faults) -> Answer``; the gateway turns the
answer into an HTTP response (log id, error block, a bad answer when the faults say so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..faults import Faults

#: (HTTP status, JSON body).
Answer = tuple[int, dict[str, Any]]
Handler = Callable[[web.Request, Faults], Answer]
#: (code, msg) of an error answer.
Error = tuple[int, str]

JSON_TYPE = "application/json; charset=utf-8"
# request[FAULT_KEY]: the bad-answer kind a handler chose for its answer (aiohttp >= 3.13 wants a typed key)
FAULT_KEY: Any = web.RequestKey("feishu_simulator_fault", str) if hasattr(web, "RequestKey") else "fault"


@dataclass(frozen=True, slots=True)
class Route:
    """One business endpoint: where, its name (for stats and quotas), its handler."""

    path: str
    endpoint: str
    handler: Handler
    #: The family's answer (HTTP 500) to a random server error or a simulator bug.
    server_error: Error
    method: str = "GET"


def ok(data: dict[str, Any]) -> Answer:
    """A success envelope."""
    return 200, {"code": 0, "msg": "success", "data": data}


def fail(error: Error, status: int = 400) -> Answer:
    """An error envelope (the gateway adds the ``error`` block with the log id)."""
    return status, {"code": error[0], "msg": error[1]}
