"""The events' routes: Feishu's (the task subscription, the app ticket resend, the long
connection's endpoint and socket) and the simulator's own under ``/_sim/events``.

- ``POST /open-apis/task/v2/task_v2/task_subscription``: behind the gateway like every business
  endpoint; subscribes the caller (the app with a tenant token, a user with a user token);
  idempotent; answers ``data.subscribed`` (false when it already was: the simulator's detail).
- ``POST /open-apis/auth/v3/app_ticket/resend`` ``{app_id, app_secret}``: an ``app_ticket`` event
  follows after ``EventSettings.app_ticket_resend_delay_seconds``.
- ``POST /callback/ws/endpoint`` ``{AppID, AppSecret}`` and ``GET /ws/v2``: the long connection.
- ``GET|POST /_sim/events/settings`` (POST merges ``EventSettings`` fields), ``POST
  /_sim/events/request_url`` ``{"url", "verify"}`` (verifies as the console does; ``null`` clears),
  ``GET /_sim/events`` (counts; ``?deliveries=1`` each event's pushes and answers), ``POST
  /_sim/events/drop`` (cut the long connections), ``POST /_sim/events/retry_now``, ``POST
  /_sim/events/app_ticket``, ``POST /_sim/events/tenant`` ``{"tenant_key", "status"}``, ``POST
  /_sim/events/push`` (any payload, delivered as given).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..auth import TokenStore
from ..events import EventHub
from ..events.long_connection import ENDPOINT_PATH, SOCKET_PATH
from ..faults import Faults
from .answers import Answer, Route, fail, ok
from .gateway import Gateway
from .tokens import BAD_CREDENTIALS

SUBSCRIPTION_PATH = "/open-apis/task/v2/task_v2/task_subscription"
TICKET_RESEND_PATH = "/open-apis/auth/v3/app_ticket/resend"
SERVER_ERROR = (1470500, "server error")

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


class EventsApi:
    """The routes of the events part."""

    def __init__(self, hub: EventHub, gateway: Gateway, tokens: TokenStore) -> None:
        self.hub = hub
        self.gateway = gateway
        self.tokens = tokens
        self._background: set[asyncio.Task[None]] = set()

    def business_routes(self) -> list[Route]:
        return [Route(SUBSCRIPTION_PATH, "task_subscription", self.subscribe, SERVER_ERROR, method="POST")]

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(TICKET_RESEND_PATH, self.resend_ticket)
        router.add_post(ENDPOINT_PATH, self.endpoint)
        router.add_get(SOCKET_PATH, self.socket)
        router.add_get("/_sim/events", self.snapshot)
        router.add_get("/_sim/events/settings", self.settings)
        router.add_post("/_sim/events/settings", self.settings)
        router.add_post("/_sim/events/request_url", self.request_url)
        router.add_post("/_sim/events/drop", self.drop)
        router.add_post("/_sim/events/retry_now", self.retry_now)
        router.add_post("/_sim/events/app_ticket", self.app_ticket)
        router.add_post("/_sim/events/tenant", self.tenant)
        router.add_post("/_sim/events/push", self.push)

    # ------------------------------------------------------------------ Feishu's routes
    def subscribe(self, request: web.Request, faults: Faults) -> Answer:
        """The v2 task subscription of the caller: the app (tenant token) or a user (user token)."""
        if request.query.get("user_id_type", "open_id") not in ("open_id", "union_id", "user_id"):
            return fail((1470400, "Invalid Param 'user_id_type'."), 400)
        token = request.headers.get("Authorization", "")[7:].strip()
        caller = self.hub.world.token_user(token) if token.startswith("u-") else None
        return ok({"subscribed": self.hub.coverage.subscribe(caller)})

    async def resend_ticket(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        if not self.tokens.credentials_ok(body.get("app_id"), body.get("app_secret")):
            return self.gateway.json_response(fail(BAD_CREDENTIALS, 200))
        self._in_background(self.hub.resend_ticket_later())
        return self.gateway.json_response((200, {"code": 0, "msg": "ok"}))

    async def endpoint(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        if not self.tokens.credentials_ok(body.get("AppID"), body.get("AppSecret")):
            return self.gateway.json_response(fail(BAD_CREDENTIALS, 200))
        base = f"{request.scheme}://{request.host}"
        data = self.hub.long_connections.endpoint(base, self.hub.settings)
        return self.gateway.json_response(ok(data))

    async def socket(self, request: web.Request) -> web.StreamResponse:
        return await self.hub.long_connections.serve(request, self.hub.settings, on_open=self.hub.wake)

    def _in_background(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ the simulator's own
    async def snapshot(self, request: web.Request) -> web.StreamResponse:
        shown = self.hub.outbox.snapshot(with_deliveries=request.query.get("deliveries") in ("1", "true"))
        shown.update(
            request_url=self.hub.webhook.url,
            long_connections=self.hub.long_connections.connected(),
            long_connections_opened=self.hub.long_connections.opened,
            subscriptions=self.hub.coverage.identities(),
        )
        return self.gateway.json_response((200, shown))

    async def settings(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            try:
                self.hub.settings.update(await _json(request))
            except (ValueError, TypeError) as exc:
                return self.gateway.json_response((400, {"ok": False, "error": str(exc)}))
        return self.gateway.json_response((200, self.hub.settings.to_dict()))

    async def request_url(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        url = body.get("url")
        if url is not None and not isinstance(url, str):
            return self.gateway.json_response((400, {"ok": False, "error": "url must be a string or null"}))
        return self.gateway.json_response(
            (200, await self.hub.request_url(url, bool(body.get("verify", True))))
        )

    async def drop(self, request: web.Request) -> web.StreamResponse:
        return self.gateway.json_response((200, {"dropped": await self.hub.long_connections.drop_all()}))

    async def retry_now(self, request: web.Request) -> web.StreamResponse:
        return self.gateway.json_response((200, {"due": self.hub.retry_now()}))

    async def app_ticket(self, request: web.Request) -> web.StreamResponse:
        self.hub.push_app_ticket()
        return self.gateway.json_response((200, {"ok": True}))

    async def tenant(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        try:
            event_id = self.hub.push_tenant(str(body["tenant_key"]), str(body["status"]))
        except KeyError as exc:
            return self.gateway.json_response((400, {"ok": False, "error": f"missing or unknown {exc}"}))
        return self.gateway.json_response((200, {"event_id": event_id}))

    async def push(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        return self.gateway.json_response((200, {"event_id": self.hub.push_payload(body)}))


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        value = json.loads(await request.read() or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
