"""A store (ISV) app: one app installed by several tenants, each its own world, quota and tokens.

Feishu serves every tenant of a store app from the same host; which tenant a business request
reads is the tenant of its ``tenant_access_token``. So this front application owns the store-app
token endpoints and hands each business request to the tenant its token was issued for: that
tenant's own ``SimulatorApp`` (its world, its gateway with its quota windows, its faults, its
stats). A token no tenant issued goes to the first tenant's gateway, which refuses it.

- ``POST /open-apis/auth/v3/app_access_token`` ``{app_id, app_secret, app_ticket}``: flat answer
  ``{code, msg, app_access_token, expire}``; the ticket must be one the simulator pushed.
- ``POST /open-apis/auth/v3/tenant_access_token`` ``{app_access_token, tenant_key}``: that tenant's
  token, unless it stopped or uninstalled the app; through the tenant's own token faults (429,
  500, bad body: ``Faults.token_*``), so one tenant's token endpoint can misbehave alone.
- ``POST /open-apis/auth/v3/app_ticket/resend`` and the ``/_sim/events`` routes: the first
  tenant's events part, which pushes ``app_ticket`` (and, from ``set_status``, ``app_open``,
  ``app_status_change`` and ``app_uninstalled``) to the app's request URL.
- ``POST /_sim/store/tenant`` ``{"tenant_key", "status"}``: a tenant installs, starts, stops or
  uninstalls the app (its tokens stop working at once; the event is pushed).
- ``GET /_sim/store/stats``: each tenant's request counters.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from .api.answers import Route, fail
from .api.app import SimulatorApp
from .auth import TokenStore
from .events import EventHub
from .faults import Faults
from .server import Simulator, wait_for_ctrl_c
from .stats import Stats
from .world import World

APP_TOKEN_PATH = "/open-apis/auth/v3/app_access_token"
STORE_TENANT_TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token"
BAD_CREDENTIALS = (10003, "invalid param")
TICKET_INVALID = (10012, "app_ticket is invalid")
APP_TOKEN_INVALID = (10014, "app access token is invalid")
TENANT_NOT_INSTALLED = (10013, "the tenant has not installed the app")
APP_STOPPED = (10015, "the app is stopped by the tenant")
APP_TOKEN_TTL_SECONDS = 7200
SERVING = ("installed", "active")
STATUSES = ("installed", "active", "stopped", "uninstalled")

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StoreApp:
    """The front application of a store app: token endpoints, and business requests by tenant."""

    def __init__(self, app_id: str, app_secret: str, worlds: Mapping[str, World]) -> None:
        if not worlds:
            raise ValueError("a store app needs at least one tenant")
        self.app_id = app_id
        self._secret = app_secret
        self.tenants: dict[str, SimulatorApp] = {
            key: SimulatorApp(world, Faults(), TokenStore(app_id, app_secret), Stats())
            for key, world in worlds.items()
        }
        self.status: dict[str, str] = dict.fromkeys(worlds, "active")
        self.first = next(iter(self.tenants.values()))
        self.refuse_tickets = False  # every ticket refused, even a resent one (a test's switch)
        self._app_tokens: dict[str, float] = {}
        self._tenant_of_token: dict[str, str] = {}

    # ------------------------------------------------------------------ what Simulator reads
    @property
    def events(self) -> EventHub:
        return self.first.events

    @property
    def faults(self) -> Faults:
        return self.first.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self.first.faults = value

    @property
    def gateway(self) -> Any:
        return self.first.gateway

    # ------------------------------------------------------------------ the tenants
    def set_status(self, tenant_key: str, status: str, push_event: bool = True) -> None:
        """A tenant installs, starts, stops or uninstalls the app; a stop ends its tokens at once."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if tenant_key not in self.tenants:
            raise KeyError(tenant_key)
        self.status[tenant_key] = status
        if status not in SERVING:
            self.tenants[tenant_key].tokens.expire_all()
        if push_event:
            self.events.push_tenant(tenant_key, status)

    def tenant_tokens(self) -> list[str]:
        """Every token handed out (app tokens and each tenant's): tests check none of them leaks."""
        issued = list(self._app_tokens)
        for tenant in self.tenants.values():
            issued += tenant.tokens.issued_tokens()
        return issued

    # ------------------------------------------------------------------ the routes
    def build(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_post(APP_TOKEN_PATH, self.app_token)
        r.add_post(STORE_TENANT_TOKEN_PATH, self.tenant_token)
        for route in self.first.routes:
            r.add_route(route.method, route.path, self._business(route.path, route.method))
        self.first.events_api.add_routes(r)  # app_ticket/resend and the /_sim/events routes
        app.on_startup.append(lambda _: self.events.start())
        app.on_cleanup.append(lambda _: self.events.stop())
        r.add_post("/_sim/store/tenant", self.tenant_status)
        r.add_get("/_sim/store/stats", self.stats)
        r.add_route("*", "/{tail:.*}", self.first.gateway.not_found)
        return app

    def _business(self, path: str, method: str) -> Endpoint:
        """A task endpoint, served by the tenant the request's token belongs to."""
        by_tenant = {
            key: next(r for r in tenant.routes if r.path == path and r.method == method)
            for key, tenant in self.tenants.items()
        }

        async def serve(request: web.Request) -> web.StreamResponse:
            token = request.headers.get("Authorization", "")[7:].strip()
            key = self._tenant_of_token.get(token)
            tenant = self.tenants[key] if key is not None else self.first
            route: Route = by_tenant[key] if key is not None else by_tenant[next(iter(by_tenant))]
            return await tenant.gateway.serve(route, request, tenant.faults)

        return serve

    async def app_token(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        if not self.first.tokens.credentials_ok(body.get("app_id"), body.get("app_secret")):
            return self.first.gateway.json_response(fail(BAD_CREDENTIALS, 200))
        ticket = body.get("app_ticket")
        # every ticket pushed stays good: a resend for one tenant spoils no other tenant's
        if self.refuse_tickets or not ticket or ticket not in self.events.tickets:
            return self.first.gateway.json_response(fail(TICKET_INVALID, 200))
        token = "a-" + secrets.token_hex(20)
        self._app_tokens[token] = time.monotonic() + APP_TOKEN_TTL_SECONDS
        answer = {"code": 0, "msg": "ok", "app_access_token": token, "expire": APP_TOKEN_TTL_SECONDS}
        return self.first.gateway.json_response((200, answer))

    async def tenant_token(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        key = body.get("tenant_key")
        tenant = self.tenants.get(key) if isinstance(key, str) else None
        expires = self._app_tokens.get(str(body.get("app_access_token")))
        if expires is None or time.monotonic() >= expires:
            error = APP_TOKEN_INVALID
        elif tenant is None or self.status.get(str(key)) == "uninstalled":
            error = TENANT_NOT_INSTALLED
        elif self.status[str(key)] not in SERVING:
            error = APP_STOPPED
        else:
            error = None
        if tenant is None or error is not None:
            return self.first.gateway.json_response(fail(error or TENANT_NOT_INSTALLED, 200))
        faults = tenant.faults
        token, expire = tenant.tokens.issue(faults.token_ttl_seconds, faults.tenant_token_prefix)
        self._tenant_of_token[token] = str(key)
        answer = (200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire})
        response = await tenant.token_api.token_response(request, answer, faults)
        tenant.stats.record("token", response.status, time.time())
        return response

    async def tenant_status(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        try:
            self.set_status(str(body["tenant_key"]), str(body["status"]))
        except (KeyError, ValueError) as exc:
            return self.first.gateway.json_response((400, {"ok": False, "error": str(exc)}))
        return self.first.gateway.json_response((200, {"ok": True}))

    async def stats(self, request: web.Request) -> web.StreamResponse:
        shown = {key: tenant.stats.as_dict() for key, tenant in self.tenants.items()}
        return self.first.gateway.json_response((200, shown))


class StoreSimulator(Simulator):
    """A store app's simulator: ``Simulator``'s server, serving several tenants (``StoreApp``)."""

    def __init__(
        self,
        worlds: Mapping[str, World],
        app_id: str = "cli_store_demo",
        app_secret: str = "store-demo-secret",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(next(iter(worlds.values())), None, app_id, app_secret, (), host, port)
        self.store = StoreApp(app_id, app_secret, worlds)
        self._app = self.store  # type: ignore[assignment]  # the same interface Simulator reads
        self.tokens = self.store.first.tokens
        self.stats = self.store.first.stats

    def tenant(self, key: str) -> SimulatorApp:
        """One tenant's app: its ``world``, ``faults``, ``stats``, ``gateway.quota``."""
        return self.store.tenants[key]

    def push_ticket(self) -> str:
        """Push an ``app_ticket`` to the app's request URL now; returns it."""
        return str(self.events.run(_call(self.events.push_app_ticket)))


def serve_store_forever(
    worlds: Mapping[str, World],
    faults: Faults,
    app_id: str,
    app_secret: str,
    host: str = "127.0.0.1",
    port: int = 0,
    ticket_every_seconds: float = 3600.0,
) -> None:
    """Serve a store app of these tenants until Ctrl-C (``python -m feishu_simulator --store-tenants N``).

    Each tenant installs the app at once (``app_open``) and an ``app_ticket`` is pushed: both wait in
    the outbox until a request URL is registered, then reach it, as Feishu's do.
    """
    sim = StoreSimulator(worlds, app_id=app_id, app_secret=app_secret, host=host, port=port)
    sim.events.settings.update({"app_ticket_interval_seconds": ticket_every_seconds})
    for number, key in enumerate(worlds):  # each tenant its own faults (and their own random draws)
        sim.tenant(key).faults = dataclasses.replace(faults, seed=faults.seed + number)
    with sim:
        for key in worlds:
            sim.store.set_status(key, "installed")
        sim.push_ticket()
        # A simulator's own fake credentials and token: printing them is the point.
        print(f"Feishu simulator (store app, {len(worlds)} tenants) listening on {sim.base_url}", flush=True)
        print(f"  app_id={app_id} app_secret={app_secret} app_type=store", flush=True)
        print(f"  tenants: {', '.join(worlds)}", flush=True)
        print(f"  verification_token={sim.events.settings.verification_token} (no encrypt key)", flush=True)
        print(
            '  the app\'s request URL: POST /_sim/events/request_url {"url": "http://…/feishu/events"}; '
            f"then app_open for each tenant and an app_ticket (again every {ticket_every_seconds:g} s)",
            flush=True,
        )
        print(
            "  a tenant stops, starts or uninstalls: POST /_sim/store/tenant "
            '{"tenant_key": …, "status": "stopped"|"active"|"uninstalled"}; GET /_sim/store/stats',
            flush=True,
        )
        wait_for_ctrl_c()


async def _call(function: Callable[[], Any]) -> Any:
    return function()


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        value = json.loads(await request.read() or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
