"""The ``/_sim`` control routes: what a test or a script on another process can change over HTTP.

``GET /_sim/stats``, ``POST /_sim/reset_stats``, ``POST /_sim/expire_tokens`` (``?users=1``
expires the user tokens too) and ``GET|POST /_sim/faults`` (POST merges a JSON object of
``Faults`` fields).  Not behind the gateway: no token, no quota, not counted as business.
"""

from __future__ import annotations

import json

from aiohttp import web

from ..auth import TokenStore
from ..faults import Faults
from ..stats import Stats
from .gateway import Gateway


class ControlApi:
    """The simulator's own knobs, over HTTP."""

    def __init__(self, gateway: Gateway, tokens: TokenStore, stats: Stats) -> None:
        self.gateway = gateway
        self.tokens = tokens
        self.stats = stats

    async def stats_snapshot(self, request: web.Request, faults: Faults) -> web.StreamResponse:
        """GET /_sim/stats: the Stats snapshot as JSON."""
        return self.gateway.json_response((200, self.stats.as_dict()))

    async def reset_stats(self, request: web.Request, faults: Faults) -> web.StreamResponse:
        """POST /_sim/reset_stats."""
        self.stats.reset()
        return self.gateway.json_response((200, {"ok": True}))

    async def expire_tokens(self, request: web.Request, faults: Faults) -> web.StreamResponse:
        """POST /_sim/expire_tokens (``?users=1`` expires the user tokens too)."""
        self.tokens.expire_all(include_user_tokens=request.query.get("users") in ("1", "true"))
        return self.gateway.json_response((200, {"ok": True}))

    async def faults(self, request: web.Request, faults: Faults) -> web.StreamResponse:
        """GET /_sim/faults reads the settings; POST merges a JSON object of changes."""
        if request.method == "POST":
            try:
                changes = json.loads(await request.read() or b"{}")
                if not isinstance(changes, dict):
                    raise TypeError("expected a JSON object")
                faults.update(changes)
            except (ValueError, TypeError) as exc:
                return self.gateway.json_response((400, {"ok": False, "error": str(exc)}))
        return self.gateway.json_response((200, faults.to_dict()))
