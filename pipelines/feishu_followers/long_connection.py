"""``listen --long-connection``: Feishu's WebSocket delivery for custom apps, our own client.

Why not the official SDK's ``lark.ws.Client``: importing ``lark_oapi`` loads ~11,000 modules and
~170 MB (the receiver must stay under 150 MB), its ``start()`` never returns (no clean SIGTERM),
and it logs the connection URL with its ticket. The protocol is small (docs/feishu-api.md, "Events"):

1. ``POST {base_url}/callback/ws/endpoint`` ``{AppID, AppSecret}`` → ``data.URL`` and ``ClientConfig``;
2. open the URL; every ``PingInterval`` seconds a CONTROL ``ping`` frame (a ``pong`` may carry a
   new ``ClientConfig``);
3. a DATA frame (headers ``type``, ``message_id``, ``sum``/``seq``, ``trace_id``) holds an event,
   maybe in parts; once recorded in the journal, the same frame goes back with ``{"code": 200}``
   (500 when it could not be recorded: Feishu pushes it again);
4. a dropped connection: wait a random part of ``ReconnectNonce``, then try again every
   ``ReconnectInterval`` seconds (capped), each attempt bounded by a timeout.

Refused credentials stop ``listen`` with one line. tests/e2e checks this client against the
simulator, and the simulator against the official client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp

from feishu_tasks.errors import CredentialsError
from feishu_tasks.journal import JournalError

from . import ws_frames
from .events import Challenge, Refused, decode_payload
from .journal_writer import JournalWriter

ENDPOINT_PATH = "/callback/ws/endpoint"
CONNECT_TIMEOUT_SECONDS = 30.0
MAX_RECONNECT_WAIT_SECONDS = 300.0
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0)
PARTS_KEPT_SECONDS = 10.0  # an event's parts that do not all arrive in this time are dropped
MAX_PARTIAL_EVENTS = 1000
SYSTEM_BUSY = 1
ENDPOINT_INTERNAL_ERROR = 1000040343


@dataclass
class ClientConfig:
    """The server's word on how to behave (seconds)."""

    reconnect_interval: float = 120.0
    reconnect_nonce: float = 30.0
    ping_interval: float = 120.0

    def update(self, given: Any) -> None:
        if not isinstance(given, dict):
            return
        for key, name in (
            ("ReconnectInterval", "reconnect_interval"),
            ("ReconnectNonce", "reconnect_nonce"),
            ("PingInterval", "ping_interval"),
        ):
            value = given.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                setattr(self, name, float(value))


@dataclass
class LongConnectionCounts:
    recorded: int = 0
    replays: int = 0
    unknown: int = 0
    malformed: int = 0
    unavailable: int = 0
    connections: int = 0


@dataclass
class _Parts:
    first_seen: float
    chunks: dict[int, bytes] = field(default_factory=dict)


class LongConnection:
    """One app's long connection, kept open until ``stop`` is set."""

    def __init__(
        self, base_url: str, app_id: str, app_secret: str, writer: JournalWriter, say: Callable[[str], None]
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._app_secret = app_secret
        self.writer = writer
        self.say = say
        self.config = ClientConfig()
        self.counts = LongConnectionCounts()
        self._partial: dict[str, _Parts] = {}
        self._answering: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect after a drop, until ``stop``; CredentialsError if refused."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            failures = 0
            while not stop.is_set():
                try:
                    url = await self._endpoint(session)
                    async with session.ws_connect(url, autoping=True, timeout=WS_TIMEOUT) as ws:
                        self.counts.connections += 1
                        self.say(f"long connection open ({self.counts.connections}) to {self.base_url}")
                        failures = 0
                        await self._serve(ws, url, stop)
                    if not stop.is_set():
                        self.say("long connection closed; reconnecting")
                except CredentialsError:
                    raise
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    failures += 1
                    if failures == 1:
                        self.say(f"long connection failed ({type(exc).__name__}); reconnecting")
                await self._wait_before_reconnect(failures, stop)
            await self._finish_answers()

    async def _endpoint(self, session: aiohttp.ClientSession) -> str:
        body = {"AppID": self.app_id, "AppSecret": self._app_secret}
        async with session.post(
            self.base_url + ENDPOINT_PATH,
            json=body,
            headers={"locale": "zh"},
            timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT_SECONDS),
        ) as answer:
            text = await answer.read()
        try:
            payload = json.loads(text)
        except ValueError:
            raise ValueError(f"the endpoint answered HTTP {answer.status}, not JSON") from None
        code = payload.get("code") if isinstance(payload, dict) else None
        if code in (SYSTEM_BUSY, ENDPOINT_INTERNAL_ERROR) or answer.status >= 500:
            raise ValueError(f"the endpoint is busy (code {code})")
        if code != 0:
            raise CredentialsError(
                f"Feishu refused the long connection for app {self.app_id} (code {code}: "
                f"{str(payload.get('msg'))[:200]}); check the app id and secret, and that the app "
                "is a custom app with long-connection delivery chosen in the developer console"
            )
        data = payload.get("data") or {}
        self.config.update(data.get("ClientConfig"))
        url = data.get("URL")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValueError("the endpoint gave no WebSocket URL")
        return url

    async def _wait_before_reconnect(self, failures: int, stop: asyncio.Event) -> None:
        if stop.is_set():
            return
        config = self.config
        wait = random.random() * config.reconnect_nonce  # noqa: S311 - jitter, not a secret
        if failures > 1:
            wait += min(config.reconnect_interval, MAX_RECONNECT_WAIT_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, url: str, stop: asyncio.Event) -> None:
        service = _service_id(url)
        pinging = asyncio.create_task(self._ping(ws, service))
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                receiving = asyncio.create_task(ws.receive())
                done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    receiving.cancel()
                    await self._finish_answers()
                    await ws.close()
                    return
                message = receiving.result()
                if message.type != aiohttp.WSMsgType.BINARY:
                    if message.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        return
                    continue
                self._frame(ws, message.data)
        finally:
            pinging.cancel()
            stopping.cancel()

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse, service: int) -> None:
        while True:
            frame = ws_frames.make_frame(ws_frames.CONTROL, service, {"type": "ping"})
            try:
                await ws.send_bytes(frame.SerializeToString())
            except (ConnectionError, RuntimeError):
                return
            await asyncio.sleep(max(self.config.ping_interval, 1.0))

    def _frame(self, ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
        try:
            frame = ws_frames.parse(data)
        except Exception:  # noqa: BLE001 - not a frame: nothing to answer
            return
        headers = ws_frames.headers_of(frame)
        if frame.method == ws_frames.CONTROL:
            if headers.get("type") == "pong" and frame.payload:
                with contextlib.suppress(ValueError):
                    self.config.update(json.loads(frame.payload))
            return
        if headers.get("type") != "event":
            return
        payload = self._whole(headers, frame.payload)
        if payload is not None:
            task = asyncio.create_task(self._answer(ws, frame, payload))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    def _whole(self, headers: dict[str, str], chunk: bytes) -> bytes | None:
        """The event's payload once all its parts arrived (``sum``/``seq``), else None."""
        try:
            total, seq = int(headers.get("sum", "1")), int(headers.get("seq", "0"))
        except ValueError:
            return None
        if total <= 1:
            return chunk
        now = time.monotonic()
        for key in [k for k, p in self._partial.items() if now - p.first_seen > PARTS_KEPT_SECONDS]:
            del self._partial[key]
        message_id = headers.get("message_id", "")
        if message_id not in self._partial and len(self._partial) >= MAX_PARTIAL_EVENTS:
            return None
        parts = self._partial.setdefault(message_id, _Parts(now))
        parts.chunks[seq] = chunk
        if len(parts.chunks) < total:
            return None
        del self._partial[message_id]
        return b"".join(parts.chunks[i] for i in range(total) if i in parts.chunks)

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, frame: Any, payload: bytes) -> None:
        """Record, then answer the frame: 200, 400 (malformed) or 500 (not recorded: push again)."""
        started = time.monotonic()
        code = await self._record(payload)
        answer = ws_frames.parse(frame.SerializeToString())
        answer.headers.add(key="biz_rt", value=str(int((time.monotonic() - started) * 1000)))
        answer.payload = json.dumps({"code": code, "headers": None, "data": None}).encode()
        # Unanswered (the connection dropped): Feishu pushes it again; the journal records it once.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(answer.SerializeToString())

    async def _record(self, payload: bytes) -> int:
        try:
            value = json.loads(payload)
            decoded = decode_payload(value if isinstance(value, dict) else {}, None)
        except (ValueError, Refused):
            self.counts.malformed += 1
            return 400
        if isinstance(decoded, Challenge):
            return 200
        try:
            new = await self.writer.record(decoded)
        except Exception as exc:  # noqa: BLE001 - a full disk, or a bug: 500, Feishu pushes it again
            self.counts.unavailable += 1
            if not isinstance(exc, JournalError):
                self.say(f"answered 500 after an unexpected {type(exc).__name__} (a bug: please report it)")
            return 500
        if not new:
            self.counts.replays += 1
        elif decoded.facts:
            self.counts.recorded += 1
        else:
            self.counts.unknown += 1
        return 200

    async def _finish_answers(self) -> None:
        if self._answering:
            await asyncio.gather(*self._answering, return_exceptions=True)


def _service_id(url: str) -> int:
    """The ``service_id`` of the connection URL's query, which every frame we send carries."""
    values = parse_qs(urlparse(url).query).get("service_id") or ["0"]
    return int(values[0]) if values[0].isdigit() else 0
