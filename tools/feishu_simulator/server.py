"""Server lifecycle: run the simulator app on loopback in a thread with its own loop.

A background thread lets synchronous tests and the demo drive a real HTTP server
without owning an event loop; ``port=0`` picks a free port that is read back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from aiohttp import web

from .api.app import SimulatorApp
from .auth import TokenStore
from .events import EventHub
from .faults import Faults
from .stats import Stats
from .world import World

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0


class Simulator:
    """A Feishu task API simulator serving one app's tenant over HTTP."""

    def __init__(
        self,
        world: World,
        faults: Faults | None = None,
        app_id: str = "cli_demo",
        app_secret: str = "demo-secret",
        user_tokens: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.world = world
        self.app_id = app_id
        self.app_secret = app_secret
        self.host = host
        self.port = port
        self.stats = Stats()
        self.tokens = TokenStore(app_id, app_secret, user_tokens)
        self._app = SimulatorApp(world, faults if faults is not None else Faults(), self.tokens, self.stats)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ settings and counters
    @property
    def events(self) -> EventHub:
        """The events part: settings, request URL, deliveries (see ``feishu_simulator.events``)."""
        return self._app.events

    @property
    def faults(self) -> Faults:
        """The live fault settings; edits (or a new object) apply to the next request."""
        return self._app.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._app.faults = value

    @property
    def base_url(self) -> str:
        """``http://host:port`` once started."""
        if self._thread is None:
            raise RuntimeError("simulator not started")
        return f"http://{self.host}:{self.port}"

    def reset_stats(self) -> None:
        """Zero the request counters."""
        self.stats.reset()

    def reset_quota(self) -> None:
        """Forget the requests counted against the quotas (call between requests)."""
        self._app.gateway.quota.clear()

    def expire_tokens(self, include_user_tokens: bool = False) -> None:
        """Invalidate every tenant token issued so far (next business call: 99991663).

        With ``include_user_tokens`` the configured user tokens answer 99991677 from now on.
        """
        self.tokens.expire_all(include_user_tokens=include_user_tokens)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Start serving in a background thread; returns once the socket listens."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="feishu-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError("simulator did not start in time")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"simulator failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Close the listener and open connections, then end the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None

    def _run(self) -> None:
        """Thread body: own loop, serve until stopped, then clean up."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._serve())
            except Exception as exc:
                log.exception("simulator failed to start")
                self._error = exc  # re-raised by start()
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
                self._runner = None
            loop.close()
            self._loop = None

    async def _serve(self) -> None:
        """Bind the site and read the real port back (``port=0`` = any free port)."""
        runner = web.AppRunner(
            self._app.build(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = int(runner.addresses[0][1])

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    world: World,
    seed: int,
    port: int,
    faults: Faults | None = None,
    app_id: str = "cli_demo",
    app_secret: str = "demo-secret",
    *,
    host: str = "127.0.0.1",
    user_tokens: Iterable[str] = (),
) -> None:
    """Serve ``world`` (made from ``seed``) until Ctrl-C, printing where and with which demo credentials."""
    sim = Simulator(
        world,
        faults,
        app_id=app_id,
        app_secret=app_secret,
        user_tokens=user_tokens,
        host=host,
        port=port,
    )
    with sim:
        # A simulator's own fake credentials: printing them is the point.
        print(f"Feishu simulator listening on {sim.base_url}", flush=True)
        print(
            f"  app_id={app_id} app_secret={app_secret} tasks={len(world.task_ids())} seed={seed}",
            flush=True,
        )
        print(
            f"  task lists={len(world.tasklist_guids())} (the app sees {len(world.visible_tasklists())})"
            f" v2-only tasks={len(world.v2_only)}",
            flush=True,
        )
        print(
            "  v1: GET /open-apis/task/v1/tasks, /open-apis/task/v1/tasks/{task_id},"
            " /open-apis/task/v1/tasks/{task_id}/followers",
            flush=True,
        )
        print(
            "  v2: GET /open-apis/task/v2/tasklists, /open-apis/task/v2/tasklists/{tasklist_guid}/tasks,"
            " /open-apis/task/v2/tasks/{task_guid}",
            flush=True,
        )
        print(
            "  control: GET /_sim/stats, POST /_sim/reset_stats, POST /_sim/expire_tokens,"
            " GET|POST /_sim/faults",
            flush=True,
        )
        wait_for_ctrl_c()


def wait_for_ctrl_c() -> None:
    """Block a command-line simulator until Ctrl-C, saying so."""
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", flush=True)
