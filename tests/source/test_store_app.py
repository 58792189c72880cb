"""A store app's token chain on scripted token endpoints and a real journal file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from feishu_tasks.errors import ConfigError, CredentialsError, FatalError
from feishu_tasks.journal import AppTicket, Journal, RecordedEvent
from feishu_tasks.retry import RetryPolicy
from feishu_tasks.store_app import (
    APP_TOKEN_PATH,
    STORE_TENANT_TOKEN_PATH,
    TICKET_RESEND_PATH,
    AppToken,
    JournalTickets,
    StoreTenantToken,
    check_tenant_key,
)
from feishu_tasks.transport import Reply

NO_WAIT = RetryPolicy(max_attempts=2, backoff_base_seconds=0.0)
APP_ID, SECRET = "cli_store", "store-s3cret"


def reply(body: dict[str, Any], status: int = 200) -> Reply:
    return Reply(status, httpx.Headers({}), json.dumps(body).encode())


class TokenEndpoints:
    """The three auth endpoints: app tokens only for accepted tickets, tenant tokens per tenant."""

    base_url = "http://sim"

    def __init__(self, good_tickets: set[str], tenants: set[str]) -> None:
        self.good_tickets, self.tenants = good_tickets, tenants
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.resends = 0
        self.on_resend: Any = None

    async def post_json(self, path: str, payload: dict[str, Any]) -> Reply:
        self.posts.append((path, payload))
        if path == TICKET_RESEND_PATH:
            self.resends += 1
            if self.on_resend:
                self.on_resend()
            return reply({"code": 0, "msg": "ok"})
        if path == APP_TOKEN_PATH:
            if payload["app_ticket"] in self.good_tickets:
                return reply(
                    {"code": 0, "msg": "ok", "app_access_token": f"a-{payload['app_ticket']}", "expire": 7200}
                )
            return reply({"code": 10012, "msg": "app_ticket is invalid"})
        assert path == STORE_TENANT_TOKEN_PATH
        if payload["tenant_key"] in self.tenants:
            return reply(
                {
                    "code": 0,
                    "msg": "ok",
                    "tenant_access_token": f"t-{payload['tenant_key']}-xxxxxxxxxxxx",
                    "expire": 7200,
                }
            )
        return reply({"code": 10013, "msg": "tenant has no access"})


class Tickets:
    def __init__(self, *tickets: str) -> None:
        self.tickets = list(tickets)
        self.renewed: list[str] = []

    async def current(self) -> str:
        return self.tickets[0]

    async def renew(self, rejected: str) -> str:
        self.renewed.append(rejected)
        self.tickets.pop(0)
        return self.tickets[0]


async def no_sleep(seconds: float) -> None:
    return None


def test_a_tenant_token_comes_from_the_app_token_which_comes_from_the_ticket() -> None:
    http = TokenEndpoints({"ticket-1"}, {"tk_a", "tk_b"})
    app = AppToken(http, APP_ID, SECRET, Tickets("ticket-1"), NO_WAIT, sleep=no_sleep)  # type: ignore[arg-type]
    a = StoreTenantToken(http, app, "tk_a", NO_WAIT, sleep=no_sleep)  # type: ignore[arg-type]
    b = StoreTenantToken(http, app, "tk_b", NO_WAIT, sleep=no_sleep)  # type: ignore[arg-type]

    async def both() -> tuple[str, str]:
        return await a.get(), await b.get()

    assert asyncio.run(both()) == ("t-tk_a-xxxxxxxxxxxx", "t-tk_b-xxxxxxxxxxxx")
    assert [path for path, _ in http.posts].count(APP_TOKEN_PATH) == 1  # one app token for all tenants


def test_a_refused_ticket_is_resent_once_then_one_line() -> None:
    http = TokenEndpoints({"ticket-2"}, {"tk_a"})
    tickets = Tickets("stale", "ticket-2")
    app = AppToken(http, APP_ID, SECRET, tickets, NO_WAIT, sleep=no_sleep)  # type: ignore[arg-type]
    assert asyncio.run(app.get()) == "a-ticket-2" and tickets.renewed == ["stale"]
    never = AppToken(
        TokenEndpoints(set(), set()),
        APP_ID,
        SECRET,
        Tickets("tkt-secret-1", "tkt-secret-2"),
        NO_WAIT,
        sleep=no_sleep,
    )  # type: ignore[arg-type]
    with pytest.raises(CredentialsError, match="also with a resent app_ticket") as caught:
        asyncio.run(never.get())
    assert SECRET not in str(caught.value) and "tkt-secret" not in str(caught.value)


def test_a_tenant_that_stopped_the_app_is_its_own_error() -> None:
    http = TokenEndpoints({"ticket-1"}, {"tk_a"})
    app = AppToken(http, APP_ID, SECRET, Tickets("ticket-1"), NO_WAIT, sleep=no_sleep)  # type: ignore[arg-type]
    gone = StoreTenantToken(http, app, "tk_gone", NO_WAIT, sleep=no_sleep)  # type: ignore[arg-type]
    with pytest.raises(CredentialsError, match="tenant 'tk_gone'"):
        asyncio.run(gone.get())
    assert [path for path, _ in http.posts].count(APP_TOKEN_PATH) == 2  # the app token renewed once


@pytest.mark.parametrize("key", ["", "a/b", "../x", "x; drop table", "é", "k" * 200, ".", "a b"])
def test_a_tenant_key_that_is_not_a_plain_token_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="is not a tenant key"):
        check_tenant_key(key)


def test_plain_tenant_keys_pass() -> None:
    for key in ("2ed263bf32cf1651", "tenant_A-1.x"):
        assert check_tenant_key(key) == key


def test_no_ticket_and_no_receiver_says_what_to_start(tmp_path: Path) -> None:
    tickets = JournalTickets(tmp_path / "j.sqlite", TokenEndpoints(set(), set()), APP_ID, SECRET)  # type: ignore[arg-type]
    with pytest.raises(FatalError, match="start `feishu-followers listen`"):
        asyncio.run(tickets.current())


def test_a_resend_is_waited_for_until_the_receiver_records_the_ticket(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        journal.heartbeat()
    http = TokenEndpoints({"fresh"}, set())
    http.on_resend = lambda: Journal(path).record([RecordedEvent("t1", (AppTicket(APP_ID, "fresh"),))])
    tickets = JournalTickets(path, http, APP_ID, SECRET, sleep=no_sleep)  # type: ignore[arg-type]
    assert asyncio.run(tickets.current()) == "fresh" and http.resends == 1


def test_a_resend_that_brings_nothing_ends_within_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        journal.heartbeat()
    now = [0.0]

    async def tick(seconds: float) -> None:
        now[0] += seconds

    tickets = JournalTickets(
        path, TokenEndpoints(set(), set()), APP_ID, SECRET, 30, clock=lambda: now[0], sleep=tick
    )  # type: ignore[arg-type]
    with pytest.raises(FatalError, match="arrived within 30 s"):
        asyncio.run(tickets.current())
    assert now[0] >= 30
