"""``follow``'s receiver: ``listen``'s server (request URL or long connection) in a thread of its own.

The receiver is asyncio (``listen.serve``) and the loads are synchronous dlt, so each keeps a
thread: the receiver its event loop here, the loads the main thread (which also takes the
signals: only the main thread may). Both meet in the change journal, SQLite in WAL mode, which
each opens with its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from feishu_tasks.errors import FatalError
from feishu_tasks.journal import Journal, JournalError

START_SECONDS = 60.0  # the server binds its port within this (a busy machine included)


class ReceiverThread:
    """One receiver serving until ``stop``; ``check`` raises what ended it early."""

    def __init__(
        self, flags: dict[str, Any], settings: Any, say: Callable[[str], None], name: str = "receiver"
    ) -> None:
        self.flags, self.settings, self.say = flags, settings, say
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.counts = ""
        self.url = ""  # the request URL once serving (the API host, for the long connection)
        self._stop_requested = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Start serving; returns once the server answers, or raises why it could not start."""
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not (self.ready.wait(0.05) or self.done.is_set()):
            if time.monotonic() > deadline:
                raise FatalError(f"the event receiver did not start within {START_SECONDS:.0f} s")
        self.check()

    def check(self) -> None:
        """Raise what ended the receiver, if it ended without being asked to."""
        if not self.done.is_set() or self._stop_requested.is_set():
            return
        if isinstance(self.error, FatalError):
            raise self.error
        if self.error is not None:
            raise FatalError(f"the event receiver failed: {type(self.error).__name__}: {self.error}")
        raise FatalError("the event receiver stopped by itself")

    def stop(self) -> None:
        """Stop taking events (any thread): those in flight are recorded and answered first."""
        self._stop_requested.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: it is stopped already
                loop.call_soon_threadsafe(stop.set)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to the main thread by check()
            self.error = exc
        finally:
            self.done.set()

    def _ready(self, url: str) -> None:
        self.url = url
        self.ready.set()

    async def _serve(self) -> None:
        from .listen import serve

        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stop_requested.is_set():  # asked to stop before the loop existed
            self._stop.set()
        try:
            journal = Journal(self.settings.journal)
        except JournalError as exc:
            raise FatalError(str(exc)) from None
        with journal:
            self.counts = await serve(self.flags, self.settings, journal, self.say, self._stop, self._ready)
