"""The aiohttp application: the handler families composed behind one gateway.

One module per family of routes: ``tokens`` (the tenant token endpoint), ``v1`` and ``v2``
(the task endpoints, behind ``gateway``: auth, quotas, faults, stats), ``control`` (the
``/_sim`` routes), ``events`` (the task subscription, the long connection and ``/_sim/events``,
over the events part, ``..events.EventHub``, which pushes the world's changes as Feishu's
events).  This module only wires them to paths, and holds the live ``Faults`` that every
handler is given per request (so replacing them applies to the next request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..auth import TokenStore
from ..events import EventHub
from ..faults import Faults
from ..stats import Stats
from ..world import World
from . import tokens
from .answers import Route
from .control import ControlApi
from .events import EventsApi
from .gateway import Gateway
from .tokens import TokenApi
from .v1 import V1Api
from .v2 import V2Api

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]
FaultsHandler = Callable[[web.Request, Faults], Awaitable[web.StreamResponse]]


class SimulatorApp:
    """The routes of one simulated app and tenant, and the state they share."""

    def __init__(self, world: World, faults: Faults, token_store: TokenStore, stats: Stats) -> None:
        self.world = world
        self.faults = faults
        self.tokens = token_store
        self.stats = stats
        self.gateway = Gateway(token_store, stats, faults)
        self.token_api = TokenApi(self.gateway, token_store, stats)
        self.control = ControlApi(self.gateway, token_store, stats)
        self.events = EventHub(world, token_store.app_id)
        self.events_api = EventsApi(self.events, self.gateway, token_store)
        self.routes: list[Route] = [
            *V1Api(world).routes(),
            *V2Api(world, token_store.app_id).routes(),
            *self.events_api.business_routes(),
        ]

    def build(self) -> web.Application:
        """The aiohttp application with every route, the catch-all 404 last."""
        app = web.Application()
        r = app.router
        r.add_post(tokens.PATH, self._with_faults(self.token_api.token))
        for route in self.routes:
            r.add_route(route.method, route.path, self._business(route))
        self.events_api.add_routes(r)
        app.on_startup.append(lambda _: self.events.start())
        app.on_cleanup.append(lambda _: self.events.stop())
        r.add_get("/_sim/stats", self._with_faults(self.control.stats_snapshot))
        r.add_post("/_sim/reset_stats", self._with_faults(self.control.reset_stats))
        r.add_post("/_sim/expire_tokens", self._with_faults(self.control.expire_tokens))
        r.add_get("/_sim/faults", self._with_faults(self.control.faults))
        r.add_post("/_sim/faults", self._with_faults(self.control.faults))
        r.add_route("*", "/{tail:.*}", self.gateway.not_found)
        return app

    def _business(self, route: Route) -> Endpoint:
        """A task endpoint: through the gateway, with the faults of the moment."""

        async def serve(request: web.Request) -> web.StreamResponse:
            return await self.gateway.serve(route, request, self.faults)

        return serve

    def _with_faults(self, handler: FaultsHandler) -> Endpoint:
        """A route outside the gateway, given the faults of the moment."""

        async def serve(request: web.Request) -> web.StreamResponse:
            return await handler(request, self.faults)

        return serve
