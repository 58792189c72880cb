"""The aiohttp application: the handler families composed behind one gateway.

One module per family of routes: ``tokens`` (the tenant token endpoint), ``v1`` and ``v2``
(the task endpoints, behind ``gateway``: auth, quotas, faults, stats), ``control`` (the
``/_sim`` routes).  This module only wires them to paths, and holds the live ``Faults`` that
every handler is given per request (so replacing them applies to the next request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..auth import TokenStore
from ..faults import Faults
from ..stats import Stats
from ..world import World
from . import tokens
from .answers import Route
from .control import ControlApi
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
        self.routes: list[Route] = [*V1Api(world).routes(), *V2Api(world, token_store.app_id).routes()]

    def build(self) -> web.Application:
        """The aiohttp application with every route, the catch-all 404 last."""
        app = web.Application()
        r = app.router
        r.add_post(tokens.PATH, self._with_faults(self.token_api.token))
        for route in self.routes:
            r.add_get(route.path, self._business(route))
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
