"""The request URL: Feishu POSTs each event to ``/feishu/events``; the answer says what became of it.

- ``url_verification``: ``{"challenge": ...}`` at once (Feishu wants it within 1 s);
- an event: 200 only once ``Journal.record`` returned (durable; a replay is recorded once, an
  unknown type is counted), so a crash between the record and the answer gives a duplicate,
  never a loss;
- 401: a wrong or missing verification token or signature (nothing recorded, the body not parsed
  further); logged at most once a minute, however many arrive;
- 400: not JSON, not decryptable, a missing or malformed field; 413: a body over 1 MiB, refused on
  its announced length before it is read (a body without one is cut off at the limit);
- 503: the journal cannot be written (a full disk): Feishu pushes the event again later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from feishu_tasks.journal import JournalError

from .events import Challenge, EventKeys, Refused, decode_request
from .journal_writer import JournalWriter

PATH = "/feishu/events"
MAX_BODY_BYTES = 1024 * 1024
REFUSALS_LOG_SECONDS = 60.0


@dataclass
class ReceiverCounts:
    """What the receiver answered, for its closing line."""

    recorded: int = 0
    replays: int = 0
    unknown: int = 0
    challenges: int = 0
    unauthorized: int = 0
    malformed: int = 0
    too_large: int = 0
    unavailable: int = 0

    def line(self) -> str:
        return ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in vars(self).items())


@dataclass
class ThrottledLine:
    """At most one line per ``every`` seconds for a kind of refusal, with the count since the last."""

    say: Callable[[str], None]
    what: str = "refused (401) requests not from Feishu"
    every: float = REFUSALS_LOG_SECONDS
    clock: Callable[[], float] = time.monotonic
    _last: float | None = None
    _unsaid: dict[str, int] = field(default_factory=dict)

    def note(self, reason: str) -> None:
        self._unsaid[reason] = self._unsaid.get(reason, 0) + 1
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return
        self._last = now
        told = "; ".join(f"{count} × {why}" for why, count in self._unsaid.items())
        self._unsaid.clear()
        self.say(f"{self.what}: {told} (at most one such line a minute)")


class Receiver:
    """The webhook handler over the journal writer."""

    def __init__(self, keys: EventKeys, writer: JournalWriter, say: Callable[[str], None]) -> None:
        self.keys = keys
        self.writer = writer
        self.counts = ReceiverCounts()
        self.refusals = ThrottledLine(say)
        self.bugs = ThrottledLine(
            say, what="answered 500 after an unexpected error (a bug: please report it)"
        )

    def app(self) -> web.Application:
        # client_max_size: aiohttp refuses (413) a body that grows past it while being read.
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(PATH, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        """One request; an unexpected error is a 500 (Feishu pushes again) and a line, not a traceback."""
        try:
            return await self._handle(request)
        except Exception as exc:  # noqa: BLE001 - a bug must not take the receiver down
            self.bugs.note(type(exc).__name__)
            return _json(500, {"msg": "internal error"})

    async def _handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._too_large()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large()
        try:
            decoded = decode_request(body, request.headers, self.keys)
        except Refused as refused:
            return self._refused(refused)
        if isinstance(decoded, Challenge):
            self.counts.challenges += 1
            return _json(200, {"challenge": decoded.challenge})
        try:
            new = await self.writer.record(decoded)
        except JournalError:
            self.counts.unavailable += 1
            return _json(503, {"msg": "the receiver cannot record events now; push again later"})
        if not new:
            self.counts.replays += 1
        elif decoded.facts:
            self.counts.recorded += 1
        else:
            self.counts.unknown += 1
        return _json(200, {"msg": "success"})

    def _too_large(self) -> web.Response:
        self.counts.too_large += 1
        return _json(413, {"msg": f"the body is over {MAX_BODY_BYTES} bytes"})

    def _refused(self, refused: Refused) -> web.Response:
        if refused.status == 401:
            self.counts.unauthorized += 1
            self.refusals.note(refused.reason)
        else:
            self.counts.malformed += 1
        return _json(refused.status, {"msg": refused.reason})


def _json(status: int, body: dict[str, str]) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")
