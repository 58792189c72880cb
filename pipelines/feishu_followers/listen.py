"""``feishu-followers listen``: receive Feishu's task events and record them in the change journal.

Two deliveries (see README, "Change capture"): the request URL (``receiver``: a webhook server on
``--host``/``--port``, path ``/feishu/events``) or ``--long-connection`` (``long_connection``).
Either way an event is acknowledged only after ``Journal.record`` returned, the journal being the
one ``run --changed`` of the same pipeline options reads (``--journal`` names it on both).

The process stays small and flat however long it runs: it imports neither dlt nor pyarrow nor
duckdb (its configuration is resolved by dlt in a child process, ``listen_settings``), keeps no
per-event state beyond the requests in flight, and writes a heartbeat to the journal every few
seconds. SIGTERM or Ctrl-C: no new request is taken, those in flight are recorded and answered,
one closing line, exit 0.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from feishu_tasks.errors import FatalError, events_extra_missing
from feishu_tasks.journal import Journal, JournalError

from .stderr import say

SHUTDOWN_SECONDS = 10.0  # requests in flight get this long to be recorded and answered


def _say(line: str) -> None:
    say(f"listen: {line}")


def listen(flags: dict[str, Any], say: Callable[[str], None] = _say) -> int:
    """Resolve the settings, open the journal, serve until a signal; the exit code."""
    try:
        from .listen_settings import resolve
    except ImportError as exc:  # cryptography (and protobuf, for the long connection) are an extra
        raise events_extra_missing("listen", exc) from None
    long_connection = bool(flags.get("long_connection"))
    settings = resolve(flags, long_connection=long_connection)
    if long_connection:
        try:
            from . import ws_frames  # noqa: F401
        except ImportError as exc:
            raise events_extra_missing("--long-connection", exc) from None
    try:
        journal = Journal(settings.journal)
    except JournalError as exc:
        raise FatalError(str(exc)) from None
    with journal:
        return asyncio.run(_serve(flags, settings, journal, say))


async def _serve(flags: dict[str, Any], settings: Any, journal: Journal, say: Callable[[str], None]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    heard: list[str] = []

    def on_signal(signum: int) -> None:
        heard.append(signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    counts = await serve(flags, settings, journal, say, stop)
    say(f"stopped by {heard[0] if heard else 'request'}: {counts}")
    return 0


async def serve(
    flags: dict[str, Any],
    settings: Any,
    journal: Journal,
    say: Callable[[str], None],
    stop: asyncio.Event,
    on_ready: Callable[[str], None] = lambda where: None,
) -> str:
    """Receive events into ``journal`` until ``stop`` is set; the counts, in words.

    ``listen`` sets ``stop`` from its signal handlers; ``follow`` runs this in its receiver thread.
    ``on_ready``: called with the request URL once it answers (or, for the long connection, the API
    host, as it is being opened).
    """
    from .journal_writer import JournalWriter

    writer = JournalWriter(journal, say)
    background = [asyncio.create_task(writer.run()), asyncio.create_task(writer.heartbeats())]
    try:
        if flags.get("long_connection"):
            on_ready(settings.base_url)
            return await _long_connection(settings, writer, say, stop)
        return await _webhook(flags, settings, writer, say, stop, on_ready)
    finally:
        await writer.drain()
        for task in background:
            task.cancel()
        for task in background:
            with suppress(asyncio.CancelledError):
                await task
        writer.close()


async def _webhook(
    flags: dict[str, Any],
    settings: Any,
    writer: Any,
    say: Callable[[str], None],
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
) -> str:
    from aiohttp import web

    from .receiver import PATH, Receiver

    receiver = Receiver(settings.keys, writer, say)
    runner = web.AppRunner(
        receiver.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    host, port = flags.get("host") or "127.0.0.1", int(flags.get("port") or 0)
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
    except OSError as exc:
        await runner.cleanup()
        raise FatalError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = runner.addresses[0][1]
    url = f"http://{host}:{bound}{PATH}"
    say(f"receiving Feishu events on {url}; journal {settings.journal}")
    on_ready(url)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # stops taking requests; those in flight are recorded and answered
    return receiver.counts.line()


async def _long_connection(
    settings: Any, writer: Any, say: Callable[[str], None], stop: asyncio.Event
) -> str:
    from .long_connection import LongConnection

    client = LongConnection(settings.base_url, settings.app_id, settings.app_secret, writer, say)
    say(f"receiving Feishu events by long connection from {settings.base_url}; journal {settings.journal}")
    await client.run(stop)
    counts = client.counts
    return ", ".join(f"{name} {value}" for name, value in vars(counts).items())
