"""The answer classifiers as tables: (HTTP status, headers, body) -> verdict, one row per case.

Rows follow shared/feishu-api.md (codes, statuses, headers) and issue 9's hostile answers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from feishu_tasks.errors import ProtocolError, RetriesExhausted
from feishu_tasks.pages import MISSING
from feishu_tasks.responses import (
    CredentialsRefused,
    Fatal,
    Malformed,
    Ok,
    RateLimited,
    TaskFailed,
    TokenIssued,
    TokenRejected,
    Transient,
    classify,
    classify_token,
    server_text,
)

LOG_ID = "202611251200000A1B2C3D000000000001"
JSON_HEADERS = {"content-type": "application/json; charset=utf-8", "x-tt-logid": LOG_ID}
HTML_HEADERS = {"content-type": "text/html"}
TEXT_HEADERS = {"content-type": "text/plain; charset=utf-8"}


def envelope(code: Any, msg: Any = "", **extra: Any) -> bytes:
    return json.dumps({"code": code, "msg": msg, **extra}).encode()


def limits(reset: str, limit: str = "50") -> dict[str, str]:
    return {**JSON_HEADERS, "x-ogw-ratelimit-reset": reset, "x-ogw-ratelimit-limit": limit}


PAGE = {"items": [{"id": "ou_1"}], "has_more": False}
HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"

# (id, status, headers, body, verdict type, fields the verdict must have)
BUSINESS_CASES = [
    ("ok", 200, JSON_HEADERS, envelope(0, "success", data=PAGE), Ok, {"data": PAGE, "log_id": LOG_ID}),
    ("ok_data_missing", 200, JSON_HEADERS, envelope(0), Ok, {"data": MISSING}),
    ("ok_data_null", 200, JSON_HEADERS, envelope(0, data=None), Ok, {"data": None}),
    ("ok_data_list", 200, JSON_HEADERS, envelope(0, data=[1]), Ok, {"data": [1]}),
    (
        "code_0_on_500",
        500,
        JSON_HEADERS,
        envelope(0, data=PAGE),
        Transient,
        {"reason": "HTTP 500 with code 0"},
    ),
    ("code_0_on_400", 400, JSON_HEADERS, envelope(0), Transient, {"bad_body": False}),
    # rate limits: 429 or 99991400, whatever the status; reset is relative seconds
    ("429_json", 429, limits("3"), envelope(99991400), RateLimited, {"reset_seconds": 3.0, "limit": 50}),
    ("400_99991400", 400, limits("1"), envelope(99991400), RateLimited, {"code": 99991400}),
    ("200_99991400", 200, limits("0"), envelope(99991400), RateLimited, {"reset_seconds": 0.0}),
    ("429_html", 429, HTML_HEADERS, HTML, RateLimited, {"code": None, "reset_seconds": None}),
    ("429_empty", 429, {}, b"", RateLimited, {"code": None}),
    ("429_code_0", 429, limits("2"), envelope(0), RateLimited, {"reset_seconds": 2.0}),
    ("reset_negative", 429, limits("-5"), envelope(99991400), RateLimited, {"reset_seconds": None}),
    ("reset_nan", 429, limits("nan"), envelope(99991400), RateLimited, {"reset_seconds": None}),
    ("reset_inf", 429, limits("inf"), envelope(99991400), RateLimited, {"reset_seconds": None}),
    ("reset_word", 429, limits("soon", "x"), envelope(99991400), RateLimited, {"reset_seconds": None}),
    ("limit_zero", 429, limits("1", "0"), envelope(99991400), RateLimited, {"limit": None}),
    # token errors: decided by the body code, at any status
    *[
        (f"token_{code}_{status}", status, JSON_HEADERS, envelope(code, "x"), TokenRejected, {"code": code})
        for code in (99991661, 99991663, 99991664, 99991671, 99991668, 99991677)
        for status in (400, 200, 401)
    ],
    ("wrong_token_type", 403, JSON_HEADERS, envelope(1470403), Fatal, {}),
    # per-task business errors
    ("invalid_task", 400, JSON_HEADERS, envelope(1470602, "invalid task id"), TaskFailed, {"code": 1470602}),
    ("no_permission", 400, JSON_HEADERS, envelope(1470432, "no permission"), TaskFailed, {"code": 1470432}),
    ("page_size_too_large", 400, JSON_HEADERS, envelope(1470421), TaskFailed, {"code": 1470421}),
    ("bad_page_token", 400, JSON_HEADERS, envelope(1470422), TaskFailed, {"code": 1470422}),
    (
        "unknown_code_400",
        400,
        JSON_HEADERS,
        envelope(99992402, "field validation"),
        TaskFailed,
        {"code": 99992402},
    ),
    # transient
    ("internal_500", 500, JSON_HEADERS, envelope(1470605, "internal"), Transient, {"code": 1470605}),
    ("internal_200", 200, JSON_HEADERS, envelope(1470605), Transient, {"code": 1470605}),
    ("unknown_code_503", 503, JSON_HEADERS, envelope(12345), Transient, {"code": 12345, "bad_body": False}),
    # bad bodies: not Feishu's envelope at all
    ("html_502", 502, HTML_HEADERS, HTML, Transient, {"bad_body": True}),
    (
        "html_200",
        200,
        HTML_HEADERS,
        HTML,
        Transient,
        {"reason": "HTTP 200 without a JSON body (text/html, 50 bytes)"},
    ),
    ("text_404", 404, TEXT_HEADERS, b"404 page not found", Transient, {"bad_body": True}),
    ("truncated_json", 200, JSON_HEADERS, envelope(0, data=PAGE)[:30], Transient, {"bad_body": True}),
    (
        "json_array",
        200,
        JSON_HEADERS,
        b"[" + envelope(0) + b"]",
        Transient,
        {"reason": "HTTP 200 with a JSON array, not an object"},
    ),
    ("json_string", 200, JSON_HEADERS, b'"ok"', Transient, {"bad_body": True}),
    ("json_null", 200, JSON_HEADERS, b"null", Transient, {"bad_body": True}),
    ("json_number", 200, JSON_HEADERS, b"0", Transient, {"bad_body": True}),
    ("empty", 200, JSON_HEADERS, b"", Transient, {"reason": "HTTP 200 with an empty body"}),
    ("binary", 200, {}, bytes(range(256)), Transient, {"bad_body": True}),
    ("deep_nesting", 200, JSON_HEADERS, b"[" * 200_000, Transient, {"bad_body": True}),
    ("huge_integer", 200, JSON_HEADERS, b'{"code": ' + b"9" * 5000 + b"}", Transient, {"bad_body": True}),
    ("code_missing", 200, JSON_HEADERS, b'{"msg": "success", "data": {}}', Transient, {"bad_body": True}),
    ("code_string", 200, JSON_HEADERS, envelope("0", data=PAGE), Transient, {"bad_body": True}),
    ("code_bool", 200, JSON_HEADERS, envelope(False, data=PAGE), Transient, {"bad_body": True}),
    ("code_past_32_bits", 400, JSON_HEADERS, envelope(2**31, "x"), Transient, {"bad_body": True}),
    ("code_negative", 400, JSON_HEADERS, envelope(-1, "x"), TaskFailed, {"code": -1}),
    ("code_float", 200, JSON_HEADERS, envelope(0.0, data=PAGE), Transient, {"bad_body": True}),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "fields"),
    [c[1:] for c in BUSINESS_CASES],
    ids=[c[0] for c in BUSINESS_CASES],
)
def test_classify(
    status: int, headers: dict[str, str], body: bytes, kind: type, fields: dict[str, Any]
) -> None:
    verdict = classify(status, headers, body)
    assert type(verdict) is kind, verdict
    for name, expected in fields.items():
        actual = (
            verdict.error.code
            if isinstance(verdict, TaskFailed) and name == "code"
            else getattr(verdict, name)
        )
        assert actual == expected, (name, verdict)


def test_task_error_keeps_status_message_and_log_id() -> None:
    body = envelope(1470602, "invalid task id", error={"log_id": "LOGFROMBODY"})
    verdict = classify(400, {}, body)
    assert isinstance(verdict, TaskFailed)
    assert (verdict.error.http_status, verdict.error.code, verdict.error.msg) == (
        400,
        1470602,
        "invalid task id",
    )
    assert verdict.error.log_id == "LOGFROMBODY"  # no header: the error block's log id
    assert str(verdict.error) == "HTTP 400, code 1470602: invalid task id"


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (["not", "a", "string"], '["not", "a", "string"]'),  # JSON, never a Python repr
        (None, ""),
        ("two\nlines", "two lines"),
        ("echoed Bearer t-g1044ddVBW7DMRR2JL3VIPUXYJEHEXUMPLE", "echoed Bearer [redacted]"),
        ("a JWT eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "a JWT [redacted] here"),
        ("lone \ud800 surrogate", "lone ? surrogate"),  # it could not be stored
    ],
)
def test_server_text_is_one_bounded_line_without_token_like_words(msg: Any, expected: str) -> None:
    verdict = classify(400, {}, envelope(1470432, msg))
    assert isinstance(verdict, TaskFailed)
    assert verdict.error.msg == expected


def test_server_text_is_bounded() -> None:
    assert len(server_text("x" * 100_000)) == 200
    assert len(server_text({"deep": ["y" * 100_000]})) <= 200


@pytest.mark.parametrize(
    ("headers", "body", "log_id"),
    [
        ({"x-tt-logid": LOG_ID}, envelope(1470432), LOG_ID),
        ({}, envelope(1470432, error={"log_id": "FROMBODY"}), "FROMBODY"),
        ({"x-tt-logid": "not a log id\r\n"}, envelope(1470432), None),
        ({}, envelope(1470432, error={"log_id": ["a"]}), None),
        ({}, envelope(1470432, error="x"), None),
        ({"x-tt-logid": "L" * 500}, envelope(1470432), None),
    ],
)
def test_log_id_only_when_it_looks_like_one(headers: dict[str, str], body: bytes, log_id: str | None) -> None:
    verdict = classify(400, headers, body)
    assert isinstance(verdict, TaskFailed)
    assert verdict.error.log_id == log_id


def test_headers_are_read_case_insensitively_from_httpx() -> None:
    import httpx

    headers = httpx.Headers({"X-Ogw-Ratelimit-Reset": "7", "X-Tt-Logid": LOG_ID})
    assert classify(429, headers, envelope(99991400)) == RateLimited(7.0, None, 99991400, LOG_ID)


def test_give_up_errors_say_what_was_wrong() -> None:
    transient = classify(200, HTML_HEADERS, HTML)
    error = transient.give_up(5)
    assert isinstance(error, RetriesExhausted)
    assert str(error) == "gave up after 5 attempts: HTTP 200 without a JSON body (text/html, 50 bytes)"
    malformed = Malformed("data.items is a string, not a list", LOG_ID)
    assert isinstance(malformed.give_up(3), ProtocolError)
    assert str(malformed.give_up(3)) == "malformed answer (3 attempts): data.items is a string, not a list"
    assert str(RateLimited(1.0, None, 99991400).give_up(31)) == "gave up after 31 attempts: rate limited"


def token_answer(**fields: Any) -> bytes:
    return json.dumps({"code": 0, "msg": "ok", **fields}).encode()


TOKEN = "t-g1044ddVBW7DMRR2JL3VIPUXYJEHEXAMPLE"
JWT = "eyJhbGciOiJFUzI1NiJ9." + "a" * 3000 + ".sig_-"

# (id, status, headers, body, verdict type, fields)
TOKEN_CASES = [
    (
        "ok",
        200,
        JSON_HEADERS,
        token_answer(tenant_access_token=TOKEN, expire=7200),
        TokenIssued,
        {"token": TOKEN, "expire_seconds": 7200.0},
    ),
    ("jwt_token", 200, {}, token_answer(tenant_access_token=JWT, expire=7200), TokenIssued, {"token": JWT}),
    (
        "short_expire",
        200,
        {},
        token_answer(tenant_access_token=TOKEN, expire=0.5),
        TokenIssued,
        {"expire_seconds": 0.5},
    ),
    *[
        (f"expire_{name}", 200, {}, body, TokenIssued, {"token": TOKEN, "expire_seconds": None})
        for name, body in [
            ("zero", token_answer(tenant_access_token=TOKEN, expire=0)),
            ("negative", token_answer(tenant_access_token=TOKEN, expire=-60)),
            ("missing", token_answer(tenant_access_token=TOKEN)),
            ("null", token_answer(tenant_access_token=TOKEN, expire=None)),
            ("string", token_answer(tenant_access_token=TOKEN, expire="7200")),
            ("bool", token_answer(tenant_access_token=TOKEN, expire=True)),
            ("nan", b'{"code": 0, "tenant_access_token": "%s", "expire": NaN}' % TOKEN.encode()),
            ("infinite", b'{"code": 0, "tenant_access_token": "%s", "expire": 1e999}' % TOKEN.encode()),
        ]
    ],
    (
        "bad_credentials_200",
        200,
        {},
        envelope(10003, "invalid param"),
        CredentialsRefused,
        {"code": 10003, "msg": "invalid param"},
    ),
    (
        "bad_credentials_400",
        400,
        {},
        envelope(10014, "app secret invalid"),
        CredentialsRefused,
        {"code": 10014},
    ),
    ("rate_limited_429", 429, limits("2"), envelope(99991400), RateLimited, {"reset_seconds": 2.0}),
    ("rate_limited_code_200", 200, limits("1"), envelope(99991400), RateLimited, {"code": 99991400}),
    ("rate_limited_html", 429, HTML_HEADERS, HTML, RateLimited, {"code": None}),
    ("error_500_json", 500, {}, envelope(-1, "internal error"), Transient, {"bad_body": False}),
    ("error_503_html", 503, HTML_HEADERS, HTML, Transient, {"bad_body": True}),
    ("html_200", 200, HTML_HEADERS, HTML, Transient, {"bad_body": True}),
    (
        "text_404",
        404,
        TEXT_HEADERS,
        b"404 page not found",
        Transient,
        {"reason": "HTTP 404 without a JSON body (text/plain; charset=utf-8, 18 bytes)"},
    ),
    ("json_array", 200, {}, b"[]", Transient, {"bad_body": True}),
    ("code_missing", 200, {}, b'{"tenant_access_token": "t-abc123456789"}', Transient, {"bad_body": True}),
    (
        "code_0_on_400",
        400,
        {},
        token_answer(tenant_access_token=TOKEN, expire=7200),
        Transient,
        {"bad_body": False},
    ),
    *[
        (f"token_{name}", 200, {}, token_answer(tenant_access_token=value, expire=7200), Malformed, {})
        for name, value in [
            ("empty", ""),
            ("null", None),
            ("number", 12345),
            ("list", [TOKEN]),
            ("newline", "t-abc\r\nX-Injected: 1"),
            ("space", "t-abc def"),
            ("non_ascii", "t-abcé"),
            ("too_long", "t-" + "a" * 9000),
        ]
    ],
    (
        "token_missing",
        200,
        {},
        token_answer(expire=7200),
        Malformed,
        {"reason": "code 0 without a usable tenant_access_token"},
    ),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "fields"),
    [c[1:] for c in TOKEN_CASES],
    ids=[c[0] for c in TOKEN_CASES],
)
def test_classify_token(
    status: int, headers: dict[str, str], body: bytes, kind: type, fields: dict[str, Any]
) -> None:
    verdict = classify_token(status, headers, body)
    assert type(verdict) is kind, verdict
    for name, expected in fields.items():
        assert getattr(verdict, name) == expected, (name, verdict)


def test_nothing_a_body_holds_makes_a_classifier_raise() -> None:
    """Every prefix of a real answer, and some junk: always a verdict, never an exception."""
    real = envelope(
        0, "success", data={"items": [{"id": "ou_1", "id_list": ["a"]}], "has_more": True, "page_token": "x"}
    )
    bodies = [real[:n] for n in range(len(real) + 1)] + [
        b"\xff\xfe",
        b"\x00" * 10,
        b"{" * 5000,
        b"NaN",
        b"1e999",
    ]
    for body in bodies:
        if body == real:
            continue
        for status in (200, 400, 429, 500):
            for verdict in (classify(status, {}, body), classify_token(status, {}, body)):
                if status == 429:  # a rate limit whatever the body says
                    assert isinstance(verdict, RateLimited), (status, body[:20], verdict)
                else:  # not Feishu's envelope: a bad body, tried again
                    assert isinstance(verdict, Transient) and verdict.bad_body, (status, body[:20], verdict)
    assert isinstance(classify(200, {}, real), Ok)
    assert isinstance(classify(429, {}, real), RateLimited)
    server_error = classify(500, {}, real)
    assert isinstance(server_error, Transient) and not server_error.bad_body
    assert isinstance(classify_token(200, {}, real), Malformed)  # code 0 without a token
