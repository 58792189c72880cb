"""The loops that act on verdicts, without a network: the GET loop, paging bounds, the token source."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from feishu_tasks.auth import TOKEN_FALLBACK_LIFETIME_SECONDS, TenantToken, UserToken, refresh_delay
from feishu_tasks.client import FeishuClient, PagingBounds
from feishu_tasks.endpoints import FOLLOWERS, LIST_TASKS
from feishu_tasks.errors import (
    ApiError,
    BadAnswersError,
    CredentialsError,
    FatalError,
    ProtocolError,
    RetriesExhausted,
)
from feishu_tasks.pages import ListPage, parse_followers_page
from feishu_tasks.ratelimit import Pacing
from feishu_tasks.responses import Ok, Transient
from feishu_tasks.retry import RetryPolicy
from feishu_tasks.rows import unix_seconds_to_timestamp
from feishu_tasks.stats import FetchStats
from feishu_tasks.transport import NoAnswer, Reply
from feishu_tasks.watches import CredentialsWatch, FirstAnswersWatch

NO_WAIT = RetryPolicy(max_attempts=3, backoff_base_seconds=0.0, max_rate_limit_waits=2)


def reply(status: int, body: Any, **headers: str) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, httpx.Headers(headers), raw)


def page(*ids: str, more: str | None = None) -> Reply:
    data: dict[str, Any] = {"items": [{"id": i} for i in ids], "has_more": more is not None}
    if more:
        data["page_token"] = more
    return reply(200, {"code": 0, "msg": "success", "data": data})


HTML = reply(200, b"<html>proxy</html>", **{"content-type": "text/html"})


class ScriptedHttp:
    """Answers GETs from a script: a Reply, a NoAnswer to raise, or a callable of the params."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.sent: list[dict[str, Any]] = []

    async def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Reply:
        self.sent.append(dict(params))
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, NoAnswer):
            raise step
        return step(params) if callable(step) else step


def client_with(http: ScriptedHttp, **kwargs: Any) -> FeishuClient:
    return FeishuClient(http, UserToken("u-test"), Pacing(None, None), NO_WAIT, FetchStats(), **kwargs)


def get(client: FeishuClient) -> ListPage[Any]:
    return asyncio.run(client.get("/p", {}, parse_followers_page))


def test_transient_answers_are_retried_until_a_page_comes() -> None:
    http = ScriptedHttp(HTML, NoAnswer("ReadTimeout (no answer)"), page("ou_1"))
    client = client_with(http)
    assert [f.id for f in get(client).items] == ["ou_1"]
    assert client.stats.retries == 2


def test_a_malformed_page_is_retried_then_a_protocol_error() -> None:
    bad = reply(200, {"code": 0, "data": {"items": [{"id": True}]}})
    client = client_with(ScriptedHttp(bad))
    with pytest.raises(ProtocolError, match=r"malformed answer \(3 attempts\): data.items\[0\].id is true"):
        get(client)
    assert len(client.http.sent) == 3


def test_bad_bodies_end_in_retries_exhausted_naming_the_last_one() -> None:
    client = client_with(ScriptedHttp(page("ou_0"), NoAnswer("the body does not decode", bad_body=True)))
    get(client)  # one good answer first: later bad bodies are faults of their requests
    with pytest.raises(RetriesExhausted, match="gave up after 3 attempts: the body does not decode"):
        get(client)


def test_rate_limits_are_waited_out_and_bounded() -> None:
    limited = reply(429, {"code": 99991400, "msg": "limited"}, **{"x-ogw-ratelimit-reset": "0"})
    client = client_with(ScriptedHttp(limited, limited, page("ou_1")))
    assert [f.id for f in get(client).items] == ["ou_1"]
    assert client.stats.rate_limited == 2
    with pytest.raises(RetriesExhausted, match="rate limited"):
        get(client_with(ScriptedHttp(limited)))


def test_first_answers_all_bad_stop_the_run_naming_base_url() -> None:
    client = client_with(ScriptedHttp(HTML), base_url="http://wrong.example")
    with pytest.raises(BadAnswersError, match=r"first 20 answers from http://wrong.example.*check base_url"):
        for _ in range(10):  # tasks fail one by one (3 attempts each) until the watch has seen 20
            with pytest.raises(RetriesExhausted):
                get(client)


def test_watch_trusts_the_host_after_one_feishu_answer() -> None:
    watch = FirstAnswersWatch("http://h", limit=3)
    bad = Transient("HTTP 200 without a JSON body", bad_body=True)
    watch.note(bad)
    watch.note(bad)
    watch.note(Ok({}, None))
    for _ in range(100):
        watch.note(bad)
    with pytest.raises(BadAnswersError):
        fresh = FirstAnswersWatch("http://h", limit=3)
        for _ in range(3):
            fresh.note(bad)


def test_a_refused_token_is_fatal_for_a_user_token() -> None:
    refused = reply(400, {"code": 99991677, "msg": "expired"})
    with pytest.raises(FatalError, match="user access token"):
        get(client_with(ScriptedHttp(refused)))


def endless(params: dict[str, Any]) -> Reply:
    """Pages that never end, each with a fresh token."""
    n = int(params.get("page_token") or 0) + 1
    return page(f"ou_{n}", more=str(n))


def pages_of(client: FeishuClient, bounds: PagingBounds, clock: Any = None) -> list[ListPage[Any]]:
    async def collect() -> list[ListPage[Any]]:
        extra = {"clock": clock} if clock else {}
        return [p async for p in client.paginate("/p", {}, parse_followers_page, bounds, FOLLOWERS, **extra)]

    return asyncio.run(collect())


def test_endless_pages_stop_at_the_page_bound() -> None:
    client = client_with(ScriptedHttp(endless))
    seen: list[ListPage[Any]] = []

    async def collect() -> None:
        async for p in client.paginate(
            "/p", {}, parse_followers_page, PagingBounds(7, 3600, "max_pages_per_task"), FOLLOWERS
        ):
            seen.append(p)

    with pytest.raises(
        ProtocolError, match=r"stopped after 7 pages: the server still says has_more.*max_pages_per_task"
    ):
        asyncio.run(collect())
    assert len(seen) == 7


def test_endless_pages_stop_at_the_time_bound() -> None:
    ticks = iter(range(0, 10_000, 10))  # every look at the clock is 10 s later
    client = client_with(ScriptedHttp(endless))
    with pytest.raises(ProtocolError, match=r"stopped after \d+ pages and \d+ s.*the bound is 25 s"):
        pages_of(client, PagingBounds(1000, 25), clock=lambda: next(ticks))


def test_a_repeated_page_token_stops_the_listing() -> None:
    client = client_with(ScriptedHttp(page("ou_1", more="A"), page("ou_2", more="B"), page("ou_3", more="A")))
    with pytest.raises(ProtocolError, match="repeated page token: page 3"):
        pages_of(client, PagingBounds(1000, 3600))


def test_a_task_with_more_followers_than_its_bound_allows_fails() -> None:
    """A server may put more on a page than page_size asks: the follower ceiling still holds."""
    from feishu_tasks.followers import fetch_task_followers

    crowded = page(*[f"ou_{i}" for i in range(150)])
    client = client_with(ScriptedHttp(crowded), task_bounds=PagingBounds(2, 3600, "max_pages_per_task"))
    outcome = asyncio.run(fetch_task_followers(client, "0d38e26e-190a-49e9-93a2-35067763ed1f", "open_id"))
    assert (outcome.status, outcome.followers, outcome.pages) == ("failed", [], 1)
    assert outcome.error_msg == "more than 100 followers (2 pages of 50; see max_pages_per_task)"


def test_pages_end_when_has_more_is_false() -> None:
    client = client_with(ScriptedHttp(page("ou_1", more="A"), page("ou_2")))
    assert [p.items[0].id for p in pages_of(client, PagingBounds(2, 3600))] == ["ou_1", "ou_2"]
    assert client.http.sent == [{}, {"page_token": "A"}]


class ScriptedTokenHttp:
    """The token endpoint from a script of Replies (the last one repeats)."""

    base_url = "http://sim"

    def __init__(self, *script: Reply) -> None:
        self.script = list(script)
        self.posts = 0

    async def post_json(self, path: str, payload: dict[str, Any]) -> Reply:
        self.posts += 1
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


async def no_sleep(seconds: float) -> None:
    return None


def tenant(http: ScriptedTokenHttp, clock: Iterator[float] | None = None) -> TenantToken:
    times = clock or iter(range(0, 1_000_000, 1))
    return TenantToken(http, "cli_app", "s3cret", NO_WAIT, clock=lambda: next(times), sleep=no_sleep)  # type: ignore[arg-type]


def issued(expire: Any = 7200, token: str = "t-" + "a" * 30) -> Reply:
    body: dict[str, Any] = {"code": 0, "msg": "ok", "tenant_access_token": token}
    if expire is not None:
        body["expire"] = expire
    return reply(200, body)


def test_token_rate_limits_and_5xx_are_retried() -> None:
    limited = reply(429, {"code": 99991400, "msg": "limited"}, **{"x-ogw-ratelimit-reset": "1"})
    http = ScriptedTokenHttp(limited, reply(500, {"code": -1}), limited, issued())
    assert asyncio.run(tenant(http).get()) == "t-" + "a" * 30
    assert http.posts == 4


def test_only_the_endpoints_own_code_means_bad_credentials() -> None:
    with pytest.raises(CredentialsError, match="app_id 'cli_app'") as caught:
        asyncio.run(tenant(ScriptedTokenHttp(reply(200, {"code": 10003, "msg": "invalid param"}))).get())
    assert "s3cret" not in str(caught.value)


def test_a_token_endpoint_that_is_not_feishu_names_base_url() -> None:
    not_found = reply(404, b"404 page not found", **{"content-type": "text/plain"})
    with pytest.raises(BadAnswersError, match="without a JSON body.*check base_url"):
        asyncio.run(tenant(ScriptedTokenHttp(not_found)).get())
    with pytest.raises(FatalError, match="could not get a tenant access token"):
        asyncio.run(tenant(ScriptedTokenHttp(reply(503, {"code": -1, "msg": "busy"}))).get())


@pytest.mark.parametrize(("expire", "posts"), [(0, 1), (-60, 1), (None, 1), ("soon", 1), (1e-9, 2)])
def test_an_unusable_expire_does_not_mean_a_token_per_request(
    expire: Any, posts: int, caplog: pytest.LogCaptureFixture
) -> None:
    """200 requests over 2 s: one token (a 600 s fallback lifetime), or one a second for a tiny one."""
    http = ScriptedTokenHttp(issued(expire))
    now = [0.0]
    tokens = TenantToken(http, "cli_app", "s3cret", NO_WAIT, clock=lambda: now[0], sleep=no_sleep)  # type: ignore[arg-type]

    async def many() -> None:
        for _ in range(200):
            await tokens.get()
            now[0] += 0.01

    with caplog.at_level(logging.WARNING, logger="feishu_tasks"):
        asyncio.run(many())
    assert http.posts == posts
    warnings = [r.getMessage() for r in caplog.records if r.name == "feishu_tasks"]
    assert len(warnings) == (1 if expire != 1e-9 else 0)  # once per run, not once per token
    assert not any("t-aaaa" in message for message in warnings)


def test_refresh_delay() -> None:
    assert refresh_delay(7200) == 6900  # 5 minutes early
    assert refresh_delay(2) == 1  # half-way for a short token
    assert refresh_delay(0.001) == 1  # never more than once a second
    assert refresh_delay(TOKEN_FALLBACK_LIFETIME_SECONDS) == 300


@pytest.mark.parametrize(
    ("value", "expected"), [("1690000000", 1690000000), ("0", None), ("9" * 20, None), ("x", None)]
)
def test_task_timestamps_never_raise(value: str, expected: int | None) -> None:
    stamp = unix_seconds_to_timestamp(value)
    assert (stamp.timestamp() if stamp else None) == expected


def test_a_listed_task_with_unstorable_text_is_stored_with_a_replacement() -> None:
    from feishu_tasks.rows import task_row

    task = json.loads('{"id": "t1", "summary": "a\\ud800b", "create_time": "1690000000"}')
    row = task_row(task)
    assert row["summary"] == "a?b" and row["create_time"].year == 2023


REFUSED = reply(400, {"code": 99991677, "msg": "expired"})
WRONG_TYPE = reply(400, {"code": 1470403, "msg": "neither"})


@pytest.mark.parametrize("refusal", [REFUSED, WRONG_TYPE], ids=["token", "token_type"])
def test_a_refusal_before_anything_was_accepted_is_tried_again_then_fatal(refusal: Reply) -> None:
    client = client_with(ScriptedHttp(refusal))
    with pytest.raises(CredentialsError):
        get(client)
    assert len(client.http.sent) == NO_WAIT.max_attempts


def test_a_refusal_is_this_requests_once_the_endpoint_accepted_the_credentials() -> None:
    client = client_with(ScriptedHttp(page("ou_1"), REFUSED, page("ou_2")))
    get(client)
    with pytest.raises(ApiError, match="code 99991677: expired \\(refused for this request only"):
        get(client)
    assert [f.id for f in get(client).items] == ["ou_2"]


def test_refusals_in_a_row_are_fatal_even_after_the_endpoint_accepted() -> None:
    client = client_with(ScriptedHttp(page("ou_1"), REFUSED))
    client.credentials = CredentialsWatch(limit=4)
    get(client)
    for _ in range(3):
        with pytest.raises(ApiError):
            get(client)
    with pytest.raises(CredentialsError, match="user access token"):
        get(client)


def test_an_acceptance_on_another_endpoint_does_not_vouch_for_this_one() -> None:
    client = client_with(ScriptedHttp(page("ou_1"), WRONG_TYPE))
    asyncio.run(client.get("/p", {}, parse_followers_page, endpoint=LIST_TASKS))
    with pytest.raises(CredentialsError, match="neither a user nor a tenant token"):
        get(client)
