"""What the simulator's tests share: one server per module over that module's ``world``, reset per test.

Each test module defines its own module-scoped ``world`` fixture (the v1 tests want invalid
ids, the v2 tests v2-only tasks); ``server`` serves it for the whole module, and ``sim`` hands
it to each test with faults, tokens, quota and stats back to a clean state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from feishu_simulator import Faults, Simulator, World

APP_ID, APP_SECRET, USER_TOKEN = "cli_test", "test-secret", "u-testuser"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Simulator]:
    with Simulator(world, app_id=APP_ID, app_secret=APP_SECRET, user_tokens={USER_TOKEN}) as sim:
        yield sim


@pytest.fixture
def sim(server: Simulator) -> Simulator:
    """The shared server with faults, tokens, quota and stats back to a clean state."""
    server.faults = Faults()
    server.expire_tokens()
    server.reset_quota()
    server.reset_stats()
    return server


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=5) as c:
        yield c


@pytest.fixture
def token(client: httpx.Client) -> str:
    """A fresh tenant token of the test app."""
    return get_token(client)


def get_token(client: httpx.Client) -> str:
    r = client.post(TOKEN_PATH, json={"app_id": APP_ID, "app_secret": APP_SECRET})
    assert r.status_code == 200 and r.json()["code"] == 0, r.text
    return str(r.json()["tenant_access_token"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(r: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """An error answer with its status, code, and the log id in both body and header."""
    body = r.json()
    assert (r.status_code, body["code"]) == (status, code), r.text
    assert body["error"]["log_id"] == r.headers["X-Tt-Logid"] and "data" not in body
    return body
