"""A store (ISV) app's token chain: the latest ``app_ticket`` → ``app_access_token`` → one
``tenant_access_token`` per tenant that installed the app.

Feishu pushes the ``app_ticket`` to the app's request URL about every hour (``feishu-followers
listen`` records it in the change journal); ``app_ticket/resend`` asks for one now, and it arrives
by event a minute or two later. Every token is cached and renewed early, as a custom app's is
(``auth.CachedToken``); a tenant's token is that tenant's alone, so a tenant that stopped the app
fails its own load and no other.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from .auth import CachedToken
from .errors import ConfigError, CredentialsError, FatalError
from .journal import Journal, JournalError, default_journal_path
from .responses import CredentialsRefused, TokenIssued
from .retry import RetryPolicy
from .transport import NoAnswer, PlainHttp

log = logging.getLogger("feishu_tasks")

APP_TOKEN_PATH = "/open-apis/auth/v3/app_access_token"
STORE_TENANT_TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token"
TICKET_RESEND_PATH = "/open-apis/auth/v3/app_ticket/resend"

TICKET_WAIT_SECONDS = 180.0  # Feishu: the resent ticket arrives "a minute or two later"
RECEIVER_ALIVE_SECONDS = 60.0  # a receiver writes a heartbeat every few seconds
POLL_SECONDS = 1.0
MAX_TENANT_KEY_CHARS = 128
MAX_PIPELINE_NAME_CHARS = 64  # dlt's limit on a schema name, which a pipeline's name may become


APP_TYPES = ("custom", "store")


def check_app_type(app_type: str | None, tenant_key: str | None) -> str:
    """The credentials' ``app_type`` (default ``custom``), and a store app's tenant key, checked.

    Both are refused in one line before any request: a store app needs its tenant, and a
    custom app reads its own tenant only.
    """
    kind = (app_type or "custom").strip().lower()
    if kind not in APP_TYPES:
        raise ConfigError(
            f"credentials app_type must be 'custom' or 'store', not {app_type!r} "
            "(SOURCES__FEISHU_TASKS__CREDENTIALS__APP_TYPE)"
        )
    if tenant_key is not None:
        check_tenant_key(tenant_key)
    if kind == "store" and not tenant_key:
        raise ConfigError(
            "a store app reads one tenant per load: name it with `run --tenant KEY` or --all-tenants "
            "(the source's tenant_key)"
        )
    return kind


def tenant_pipeline_name(pipeline_name: str, tenant_key: str) -> str:
    """The dlt pipeline of one tenant: ``<pipeline>__<tenant_key>``.

    dlt names a folder and, before the source's schema is known, a schema after the pipeline: a
    snake-case identifier of at most 64 characters. A key that is not one already (a ``.`` or
    ``-``, capitals, a long key) is written in those characters with a short hash of the key, so
    that two keys never share a pipeline.
    """
    key = check_tenant_key(tenant_key)
    safe = re.sub(r"[^a-z0-9_]", "_", key.lower())
    name = f"{pipeline_name}__{safe}"
    if safe != key or len(name) > MAX_PIPELINE_NAME_CHARS:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        room = max(1, MAX_PIPELINE_NAME_CHARS - len(pipeline_name) - len(digest) - 3)
        name = f"{pipeline_name}__{safe[:room]}_{digest}"
    return name


def default_ticket_journal() -> Path:
    """Where ``listen`` of the default pipeline records the tickets (dlt's pipelines folder)."""
    from dlt.common.pipeline import get_dlt_pipelines_dir

    return default_journal_path(get_dlt_pipelines_dir(), "feishu_followers")


def check_tenant_key(key: str) -> str:
    """A tenant key is a plain token (letters, digits, ``_``, ``-``, ``.``): refused in one line otherwise.

    It becomes part of table keys, file and pipeline names, and log lines: nothing else gets in.
    """
    if (
        not key
        or len(key) > MAX_TENANT_KEY_CHARS
        or not key.isascii()
        or not all(ch.isalnum() or ch in "_-." for ch in key)
        or key.strip(".") != key
    ):
        shown = key if len(key) <= 40 and key.isprintable() else f"{key[:40]!r}…"
        raise ConfigError(
            f"tenant_key (--tenant): {shown!r} is not a tenant key: one is letters, digits, '_', '-' and '.' "
            f"(at most {MAX_TENANT_KEY_CHARS} characters), as Feishu's app_open event gives it"
        )
    return key


class TicketSource(Protocol):
    """Where a store app's ``app_ticket`` comes from."""

    async def current(self) -> str:
        """The latest ticket; asks Feishu to resend one and waits (bounded) when there is none."""
        ...

    async def renew(self, rejected: str) -> str:
        """A ticket other than ``rejected``: asks Feishu to resend one and waits (bounded)."""
        ...


class JournalTickets:
    """Tickets as ``listen`` records them in the change journal, with ``app_ticket/resend``."""

    def __init__(
        self,
        journal_path: str | Path,
        http: PlainHttp,
        app_id: str,
        app_secret: str,
        wait_seconds: float = TICKET_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.journal_path = Path(journal_path)
        self._http = http
        self.app_id = app_id
        self._app_secret = app_secret
        self.wait_seconds = wait_seconds
        self._clock, self._sleep = clock, sleep

    def _latest(self) -> str | None:
        try:
            with Journal(self.journal_path) as journal:
                latest = journal.latest_ticket(self.app_id)
                self._alive = journal.receiver_alive(RECEIVER_ALIVE_SECONDS)
        except JournalError as exc:
            raise FatalError(str(exc)) from None
        return latest[0] if latest else None

    async def current(self) -> str:
        return self._latest() or await self._resend_and_wait(None)

    async def renew(self, rejected: str) -> str:
        return await self._resend_and_wait(rejected)

    async def _resend_and_wait(self, rejected: str | None) -> str:
        """Ask Feishu to push a ticket, then wait for ``listen`` to record one we have not tried."""
        self._latest()
        if not self._alive:
            raise FatalError(
                f"no usable app_ticket for store app {self.app_id!r} and no receiver running: start "
                "`feishu-followers listen` (the app's request URL) with the same --pipelines-dir or "
                "--journal, then run again (Feishu pushes a ticket every hour, or on resend)"
            )
        await self._ask_resend()
        log.warning(
            "waiting up to %.0f s for Feishu to push a new app_ticket for %s to the receiver",
            self.wait_seconds,
            self.app_id,
        )
        deadline = self._clock() + self.wait_seconds
        while self._clock() < deadline:
            await self._sleep(POLL_SECONDS)
            ticket = self._latest()
            if ticket and ticket != rejected:
                return ticket
        raise FatalError(
            f"no app_ticket for store app {self.app_id!r} arrived within {self.wait_seconds:.0f} s of a "
            "resend; check that the app's request URL reaches `feishu-followers listen` and that the "
            "app_ticket event is subscribed in the developer console"
        )

    async def _ask_resend(self) -> None:
        try:
            await self._http.post_json(
                TICKET_RESEND_PATH, {"app_id": self.app_id, "app_secret": self._app_secret}
            )
        except NoAnswer as exc:  # the wait below says whether a ticket came anyway
            log.warning("app_ticket/resend got no answer (%s); waiting for a ticket anyway", exc.reason)


class AppToken(CachedToken):
    """A store app's ``app_access_token``, from the latest ticket (one resend when it is refused)."""

    def __init__(
        self,
        http: PlainHttp,
        app_id: str,
        app_secret: str,
        tickets: TicketSource,
        retry: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(http, retry, clock, sleep)
        self.app_id = app_id
        self._app_secret = app_secret
        self._tickets = tickets

    async def _issue(self) -> TokenIssued:
        ticket = await self._tickets.current()
        verdict = await self._post(APP_TOKEN_PATH, self._payload(ticket), "app_access_token")
        if isinstance(verdict, CredentialsRefused):  # a stale ticket, or wrong credentials: one resend
            ticket = await self._tickets.renew(ticket)
            verdict = await self._post(APP_TOKEN_PATH, self._payload(ticket), "app_access_token")
        if isinstance(verdict, CredentialsRefused):
            raise CredentialsError(
                f"Feishu refused the app_access_token for store app {self.app_id!r} also with a resent "
                f"app_ticket (code {verdict.code}: {verdict.msg}); check "
                "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID and …__APP_SECRET"
            )
        return verdict

    def _payload(self, ticket: str) -> dict[str, str]:
        return {"app_id": self.app_id, "app_secret": self._app_secret, "app_ticket": ticket}


class StoreTenantToken(CachedToken):
    """One tenant's ``tenant_access_token`` of a store app (a token source for that tenant's client)."""

    def __init__(
        self,
        http: PlainHttp,
        app_token: AppToken,
        tenant_key: str,
        retry: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(http, retry, clock, sleep)
        self.app_token = app_token
        self.tenant_key = check_tenant_key(tenant_key)

    def rejection_message(self, code: int | None, msg: str) -> str:
        return (
            f"Feishu rejected a freshly issued tenant access token of tenant {self.tenant_key!r} "
            f"(code {code}: {msg}); the tenant may have stopped the app or removed its task scopes"
        )

    async def _issue(self) -> TokenIssued:
        verdict = await self._ask()
        if isinstance(verdict, CredentialsRefused):  # perhaps the app token: renewed once
            verdict = await self._ask(renew_app_token=True)
        if isinstance(verdict, TokenIssued):
            return verdict
        raise CredentialsError(
            f"Feishu refused a tenant access token for tenant {self.tenant_key!r} (code {verdict.code}: "
            f"{verdict.msg}); the tenant may have stopped or uninstalled the app"
        )

    async def _ask(self, renew_app_token: bool = False) -> TokenIssued | CredentialsRefused:
        if renew_app_token:
            self.app_token.invalidate(await self.app_token.get())
        payload = {"app_access_token": await self.app_token.get(), "tenant_key": self.tenant_key}
        return await self._post(STORE_TENANT_TOKEN_PATH, payload, "tenant_access_token")
