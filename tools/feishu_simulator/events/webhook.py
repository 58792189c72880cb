"""Delivery by request URL: Feishu POSTs each event to the app's URL (sealed when an Encrypt Key
is set) and counts it delivered only on HTTP 200 within 3 s."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import aiohttp

from . import envelopes
from .sealing import seal
from .settings import EventSettings

VERIFY_WITHIN_SECONDS = 1.0  # Feishu: answer the url_verification within 1 s


class Webhook:
    """The app's request URL and one HTTP client session to push to it."""

    def __init__(self) -> None:
        self.url: str | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self, max_in_flight: int) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max_in_flight))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def push(self, payload: dict[str, Any], settings: EventSettings) -> str:
        """One push: its answer ("200", "500", "timeout", "refused", ...)."""
        if self._session is None or self.url is None:
            return "no request URL"
        body, headers = seal(payload, settings.encrypt_key)
        timeout = aiohttp.ClientTimeout(total=settings.ack_timeout_seconds)
        try:
            async with self._session.post(self.url, data=body, headers=headers, timeout=timeout) as answer:
                await answer.read()
                return str(answer.status)
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientConnectorError:
            return "refused"
        except (aiohttp.ClientError, OSError) as exc:
            return type(exc).__name__

    async def verify(self, url: str, settings: EventSettings) -> dict[str, Any]:
        """Register a request URL as the console does: a url_verification, answered in time."""
        challenge = secrets.token_hex(16)
        body, headers = seal(
            envelopes.url_verification(challenge, settings.verification_token), settings.encrypt_key
        )
        headers = {k: v for k, v in headers.items() if not k.startswith("X-Lark")}  # not signed (SDK rule)
        started = time.monotonic()
        outcome: dict[str, Any] = {"url": url, "verified": False}
        try:
            assert self._session is not None
            timeout = aiohttp.ClientTimeout(total=settings.ack_timeout_seconds)
            async with self._session.post(url, data=body, headers=headers, timeout=timeout) as answer:
                text = await answer.read()
                outcome["status"] = answer.status
            echoed = json.loads(text).get("challenge") if answer.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, AttributeError) as exc:
            outcome["error"] = type(exc).__name__
            echoed = None
        outcome["seconds"] = round(time.monotonic() - started, 4)
        outcome["verified"] = echoed == challenge and outcome["seconds"] <= VERIFY_WITHIN_SECONDS
        return outcome
