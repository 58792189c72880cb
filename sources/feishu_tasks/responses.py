"""What one answer means: (HTTP status, headers, body bytes) -> a verdict. Pure, no I/O, no state.

``classify`` reads a business answer (``{code, msg, data}``), ``classify_token`` the flat
answer of the token endpoint. Neither ever raises: whatever the bytes, the result is one of

- ``Ok`` / ``TokenIssued``: the answer's payload (a page's ``data`` is checked by pages.py);
- ``RateLimited``: wait ``reset_seconds`` (``x-ogw-ratelimit-reset``), then try again;
- ``Transient``: try again after a backoff (5xx, 1470605, a body that is not Feishu's JSON);
- ``Malformed``: Feishu's envelope around content that breaks the API's contract (set by
  the caller from a ``PageError``, or by ``classify_token``); tried again like ``Transient``;
- ``TokenRejected``: the token is refused (the caller may renew it once);
- ``TaskFailed``: a business error of this request that retrying will not cure;
- ``Fatal`` / ``CredentialsRefused``: the credentials cannot be used; the run cannot go on
  (for ``Fatal``, unless the endpoint accepts them for other requests: ``watches.py``).

The rules come from shared/feishu-api.md: decide from the body ``code`` (the HTTP status of
token errors is not reliable), 429 or 99991400 is a rate limit whatever the body, 5xx is
transient. A body that is not a JSON object with an integer ``code`` is a *bad body*:
transient for this request (a proxy, a gateway page, a cut connection), and a sign of a wrong
``base_url`` when every answer is one (see ``FirstAnswersWatch`` in watches.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .endpoints import Family
from .errors import ApiError, ProtocolError, RetriesExhausted, TaskError
from .pages import MISSING
from .settings import (
    CODE_OK,
    CODE_RATE_LIMITED,
    CODE_WRONG_TOKEN_TYPE,
    TOKEN_ERROR_CODES,
    TRANSIENT_CODES,
    V2_TRANSIENT_CODES,
)

MAX_TEXT = 200  # characters of server text (msg, content type) kept in a message
MAX_TOKEN_CHARS = 8192  # tenant tokens may be JWTs: reserve well over the documented 4 KB

Headers = Mapping[str, str]  # case-insensitive (httpx.Headers), or a dict with lower-case keys


@dataclass(frozen=True, slots=True)
class Ok:
    """``code`` 0 on a 2xx answer; ``data`` is the envelope's ``data`` (MISSING when absent)."""

    data: Any
    log_id: str | None


@dataclass(frozen=True, slots=True)
class RateLimited:
    """429 or code 99991400; ``reset_seconds`` and ``limit`` from the ``x-ogw-ratelimit-*`` headers."""

    reset_seconds: float | None
    limit: int | None
    code: int | None = None
    log_id: str | None = None

    def give_up(self, attempts: int) -> TaskError:
        return RetriesExhausted(attempts, "rate limited", self.code, self.log_id)


@dataclass(frozen=True, slots=True)
class Transient:
    """Worth another try; ``bad_body`` when the body was not Feishu's JSON envelope at all."""

    reason: str
    code: int | None = None
    log_id: str | None = None
    bad_body: bool = False

    def give_up(self, attempts: int) -> TaskError:
        return RetriesExhausted(attempts, self.reason, self.code, self.log_id)


@dataclass(frozen=True, slots=True)
class Malformed:
    """Feishu's envelope around content that breaks the contract (a bad page, no token in a token answer)."""

    reason: str
    log_id: str | None = None

    def give_up(self, attempts: int) -> TaskError:
        return ProtocolError(f"malformed answer ({attempts} attempts): {self.reason}", self.log_id)


@dataclass(frozen=True, slots=True)
class TokenRejected:
    """A token error code (99991661/63/64/71/68/77); whether to renew is the caller's call."""

    code: int
    msg: str
    log_id: str | None = None
    status: int = 200

    def as_task_error(self) -> ApiError:
        """The answer as one request's failure (see ``watches.CredentialsWatch``)."""
        return ApiError(self.status, self.code, self.msg, self.log_id)


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """A business error of this request (invalid task, no permission, ...): final for this task."""

    error: ApiError


@dataclass(frozen=True, slots=True)
class Fatal:
    """The credentials cannot be used here; ``message`` is the one line for the user.

    ``error`` is the same answer as one request's failure, for an endpoint that accepts the
    same credentials for other requests (see ``watches.CredentialsWatch``).
    """

    message: str
    error: ApiError

    def as_task_error(self) -> ApiError:
        return self.error


@dataclass(frozen=True, slots=True)
class TokenIssued:
    """A usable tenant token; ``expire_seconds`` is None when ``expire`` is not a positive number."""

    token: str
    expire_seconds: float | None


@dataclass(frozen=True, slots=True)
class CredentialsRefused:
    """The token endpoint's own answer with a non-zero code: the app credentials are wrong."""

    code: int
    msg: str


Verdict = Ok | RateLimited | Transient | Malformed | TokenRejected | TaskFailed | Fatal
TokenVerdict = TokenIssued | RateLimited | Transient | Malformed | CredentialsRefused

WRONG_TOKEN_TYPE_MESSAGE = (
    "Feishu says the token is neither a user nor a tenant token (code {code}); "
    "configure app_id/app_secret or a user access token (u-...)"
)


def classify(status: int, headers: Headers, body: bytes, family: Family = "v1") -> Verdict:
    """The verdict on one answer of a business endpoint of API ``family`` (v1 or v2).

    The families share the envelope, the token codes and the rate limit; they differ in two
    codes: 1470403 (v1: the token is of neither kind, fatal; v2: no permission on this task or
    list) and the server error (v1: 1470605, v2: 1470500, both transient).
    """
    envelope = _json_object(body)
    if type(envelope) is not dict or not _is_code(envelope.get("code")):
        return _not_an_envelope(status, headers, body, envelope)
    code: int = envelope["code"]
    log_id = log_id_of(headers, envelope)
    if status == 429 or code == CODE_RATE_LIMITED:
        return rate_limited(headers, code, log_id)
    if code == CODE_OK:
        if 200 <= status < 300:
            return Ok(envelope.get("data", MISSING), log_id)
        return Transient(f"HTTP {status} with code 0", code, log_id)
    msg = server_text(envelope.get("msg"))
    if code in TOKEN_ERROR_CODES:
        return TokenRejected(code, msg, log_id, status)
    if code == CODE_WRONG_TOKEN_TYPE and family == "v1":
        return Fatal(WRONG_TOKEN_TYPE_MESSAGE.format(code=code), ApiError(status, code, msg, log_id))
    if code in (TRANSIENT_CODES if family == "v1" else V2_TRANSIENT_CODES) or status >= 500:
        return Transient(f"HTTP {status}, code {code}: {msg}", code, log_id)
    return TaskFailed(ApiError(status, code, msg, log_id))


def classify_token(
    status: int, headers: Headers, body: bytes, field: str = "tenant_access_token"
) -> TokenVerdict:
    """The verdict on one answer of a token endpoint (a flat object, no ``data``) issuing ``field``."""
    answer = _json_object(body)
    if type(answer) is not dict or not _is_code(answer.get("code")):
        return _not_an_envelope(status, headers, body, answer)
    code: int = answer["code"]
    if status == 429 or code == CODE_RATE_LIMITED:
        return rate_limited(headers, code, log_id_of(headers, answer))
    if status >= 500:
        return Transient(f"HTTP {status}, code {code}: {server_text(answer.get('msg'))}", code)
    if code != CODE_OK:
        return CredentialsRefused(code, server_text(answer.get("msg")))
    if not 200 <= status < 300:
        return Transient(f"HTTP {status} with code 0")
    token = answer.get(field, MISSING)
    if not usable_token(token):
        return Malformed(f"code 0 without a usable {field}")
    return TokenIssued(token, positive_seconds(answer.get("expire")))


def _json_object(body: bytes) -> Any:
    """The decoded JSON (any type), or MISSING when the body is not JSON at all."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: a hostile, deeply nested body
        return MISSING


def _is_code(value: Any) -> bool:
    """An envelope's ``code``: a JSON integer that fits 32 bits (it is stored as int64)."""
    return type(value) is int and -(2**31) <= value < 2**31


def _not_an_envelope(status: int, headers: Headers, body: bytes, parsed: Any) -> RateLimited | Transient:
    """A 429 is a rate limit whatever its body; anything else without an envelope is a bad body."""
    if status == 429:
        return rate_limited(headers, None, log_id_of(headers, None))
    if not body:
        what = "with an empty body"
    elif parsed is MISSING:
        content_type = server_text(headers.get("content-type") or "no content type", 60)
        what = f"without a JSON body ({content_type}, {len(body)} bytes)"
    elif type(parsed) is not dict:
        what = f"with a JSON {_json_kind(parsed)}, not an object"
    else:
        what = "with a JSON object without an integer code"  # or one past 32 bits
    return Transient(f"HTTP {status} {what}", None, log_id_of(headers, None), bad_body=True)


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def rate_limited(headers: Headers, code: int | None, log_id: str | None) -> RateLimited:
    """Rate-limit verdict; ``x-ogw-ratelimit-reset`` is relative seconds to wait."""
    reset = _float_header(headers, "x-ogw-ratelimit-reset")
    limit = _float_header(headers, "x-ogw-ratelimit-limit")
    usable_limit = int(limit) if limit is not None and limit >= 1 else None
    return RateLimited(reset if reset is not None and reset >= 0 else None, usable_limit, code, log_id)


def _float_header(headers: Headers, name: str) -> float | None:
    """A finite number from a header, or None when absent or malformed."""
    raw = headers.get(name)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


_LOG_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def log_id_of(headers: Headers, envelope: Mapping[str, Any] | None) -> str | None:
    """The request's log id: the ``X-Tt-Logid`` header, else the error body's ``error.log_id``.

    Only ids that look like ids are kept: they are stored in ``task_fetch_status``.
    """
    header = headers.get("x-tt-logid")
    if header and _LOG_ID_RE.fullmatch(header):
        return header
    error = envelope.get("error") if envelope is not None else None
    candidate = error.get("log_id") if type(error) is dict else None
    return candidate if type(candidate) is str and _LOG_ID_RE.fullmatch(candidate) else None


_SECRET_RE = re.compile(r"\b[tu]-[A-Za-z0-9_.\-]{12,}|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-.]+")


def server_text(value: Any, limit: int = MAX_TEXT) -> str:
    """Server-chosen text (``msg``, a header) fit for a message: one line, bounded, no token-like words.

    A proxy that echoes the request could put our bearer token into ``msg``.
    """
    if value is None:
        return ""
    if type(value) is not str:
        try:
            value = json.dumps(value, ensure_ascii=False)[: limit * 2]
        except (ValueError, RecursionError):
            value = type(value).__name__
    text = " ".join(value[: limit * 4].split())
    text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate cannot be stored
    text = _SECRET_RE.sub("[redacted]", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def usable_token(value: Any) -> bool:
    """A string that can go into an ``Authorization`` header: printable ASCII, no spaces, bounded."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_TOKEN_CHARS
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def positive_seconds(value: Any) -> float | None:
    """``expire`` as seconds when it is a positive, finite JSON number; else None."""
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)
