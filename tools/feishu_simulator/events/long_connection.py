"""Delivery by long connection: the WebSocket that Feishu offers custom apps.

``POST /callback/ws/endpoint`` with ``{AppID, AppSecret}`` answers ``data.URL`` (a one-time
ticket in its query) and a ``ClientConfig``; the client opens that URL and gets each event as
DATA frames (``pbbp2.Frame``: headers ``type``, ``message_id``, ``sum``/``seq``, ``trace_id``), and
answers each with the same frame carrying ``{"code": 200}``. An event not answered 200 within
3 s is pushed again. CONTROL frames: the client pings, the server pongs (with the ClientConfig).

``frames`` needs ``protobuf`` (the ``[events]`` extra): imported when a client connects, so the
simulator runs without it for everything else.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .settings import EventSettings

ENDPOINT_PATH = "/callback/ws/endpoint"
SOCKET_PATH = "/ws/v2"


@dataclass
class _Client:
    """One open long connection and the answers it still owes."""

    ws: web.WebSocketResponse
    request: web.Request
    service_id: int
    waiting: dict[str, asyncio.Future[int]] = field(default_factory=dict)


class LongConnections:
    """The tickets handed out, the open connections, and pushing an event down one of them."""

    def __init__(self) -> None:
        self._tickets: set[str] = set()
        self._clients: list[_Client] = []
        self._turn = itertools.count()
        self._seq = itertools.count(1)
        self.opened = 0  # connections accepted so far (a reconnect test counts them)

    def connected(self) -> int:
        return len(self._clients)

    def endpoint(self, base_url: str, settings: EventSettings) -> dict[str, Any]:
        """The endpoint answer's ``data``: where to connect, and how to behave."""
        ticket = secrets.token_hex(16)
        self._tickets.add(ticket)
        device, service = secrets.token_hex(8), str(1000 + len(self._tickets))
        ws_base = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return {
            "URL": f"{ws_base}{SOCKET_PATH}?device_id={device}&service_id={service}&ticket={ticket}",
            "ClientConfig": self.client_config(settings),
        }

    @staticmethod
    def client_config(settings: EventSettings) -> dict[str, int]:
        return {
            "ReconnectCount": -1,
            "ReconnectInterval": settings.reconnect_interval_seconds,
            "ReconnectNonce": settings.reconnect_nonce_seconds,
            "PingInterval": settings.ping_interval_seconds,
        }

    async def serve(
        self, request: web.Request, settings: EventSettings, on_open: Callable[[], None]
    ) -> web.StreamResponse:
        """The WebSocket: accepted with a ticket from the endpoint (each ticket once)."""
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(
                status=403, headers={"handshake-status": "403", "handshake-msg": "bad ticket"}
            )
        self._tickets.discard(ticket)
        from . import frames  # noqa: F401  (fails here, not at the first event, without protobuf)

        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        client = _Client(ws, request, int(request.query.get("service_id", "0") or 0))
        self._clients.append(client)
        self.opened += 1
        on_open()
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    await self._received(client, message.data, settings)
        finally:
            self._clients.remove(client)
            for waiting in client.waiting.values():
                if not waiting.done():
                    waiting.set_result(-1)
        return ws

    async def _received(self, client: _Client, data: bytes, settings: EventSettings) -> None:
        from . import frames

        try:
            frame = frames.parse(data)
        except Exception:  # noqa: BLE001 - a client's garbage is not the simulator's failure
            return
        headers = frames.headers_of(frame)
        if frame.method == frames.CONTROL and headers.get("type") == "ping":
            config = json.dumps(self.client_config(settings)).encode()
            pong = frames.make_frame(frames.CONTROL, client.service_id, {"type": "pong"}, config)
            await client.ws.send_bytes(pong.SerializeToString())
        elif frame.method == frames.DATA:
            waiting = client.waiting.pop(headers.get("message_id", ""), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(_answer_code(frame.payload))

    async def push(self, event_id: str, payload: dict[str, Any], settings: EventSettings) -> str:
        """One push down one open connection (in turn): its answer ("200", "500", "timeout", ...)."""
        if not self._clients:
            return "no connection"
        from . import frames

        client = self._clients[next(self._turn) % len(self._clients)]
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        parts = max(1, min(settings.long_connection_parts, len(body)))
        size = -(-len(body) // parts)
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        client.waiting[event_id] = answer
        trace_id = secrets.token_hex(8)
        try:
            for seq in range(parts):
                headers = {
                    "type": "event",
                    "message_id": event_id,
                    "sum": str(parts),
                    "seq": str(seq),
                    "trace_id": trace_id,
                }
                chunk = body[seq * size : (seq + 1) * size]
                frame = frames.make_frame(frames.DATA, client.service_id, headers, chunk, next(self._seq))
                await client.ws.send_bytes(frame.SerializeToString())
            code = await asyncio.wait_for(answer, settings.ack_timeout_seconds)
        except TimeoutError:
            return "timeout"
        except (ConnectionError, RuntimeError):
            return "closed"
        finally:
            client.waiting.pop(event_id, None)
        return "closed" if code < 0 else str(code)

    async def drop_all(self) -> int:
        """Cut every open connection as a network failure would (no close handshake)."""
        dropped = 0
        for client in list(self._clients):
            transport = client.request.transport
            if transport is not None:
                transport.abort()
                dropped += 1
        return dropped

    async def close_all(self) -> None:
        for client in list(self._clients):
            await client.ws.close()


def _answer_code(payload: bytes) -> int:
    try:
        code = json.loads(payload).get("code")
    except (ValueError, AttributeError):
        return 0
    return code if isinstance(code, int) else 0
