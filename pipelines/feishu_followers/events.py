"""Feishu's event protocol, receiving side, as pure functions: a request in, a decision out.

``decode_request(body, headers, keys)`` checks what Feishu's request URL delivery promises (see
"Events" in docs/feishu-api.md) and returns a ``Challenge`` (``url_verification``: answer it) or a
``RecordedEvent`` (``feishu_tasks.journal``: record it, then answer 200), or raises ``Refused``
with the HTTP status to answer (401: not from Feishu; 400: from Feishu but unusable). Nothing here
does I/O, so the receiver (``listen``) and the long connection share it, and its table of cases
is a unit test.

The order of the checks is the security: with an Encrypt Key, a signed request's signature is
checked on the raw bytes before anything is parsed; the verification token is compared before
any event field is read; every comparison of a secret is constant-time. The crypto is the
``cryptography`` package's AES-CBC and PKCS7 (never our own). ``Refused.reason`` names what was
wrong, never a secret or a value of the request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from feishu_tasks.journal import (
    V1_OBJ_TYPES,
    V1_TENANT_UPDATE,
    AppTicket,
    Fact,
    RecordedEvent,
    TaskChange,
    TenantState,
    TenantStatus,
)

from .event_fields import (
    Fields,
    Malformed,
    event_types_of,
    millis_from_v1_ts,
    millis_from_v2_create_time,
    plain_token,
    task_id_of,
)

TIMESTAMP_HEADER = "X-Lark-Request-Timestamp"
NONCE_HEADER = "X-Lark-Request-Nonce"
SIGNATURE_HEADER = "X-Lark-Signature"
URL_VERIFICATION = "url_verification"
MAX_CHALLENGE_CHARS = 256

V2_TASK_EVENT = "task.task.update_user_access_v2"
V1_TENANT_EVENT = "task.task.update_tenant_v1"
V1_TASK_EVENT = "task.task.updated_v1"
V1_DELETED_OBJ_TYPE = 7


@dataclass(frozen=True)
class EventKeys:
    """The app's event secrets (from dlt config); never printed (``repr`` hides them)."""

    verification_token: str = field(repr=False)
    encrypt_key: str | None = field(default=None, repr=False)
    aes_key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Feishu's key is SHA-256 of the Encrypt Key; computed once, not per event.
        key = hashlib.sha256(self.encrypt_key.encode()).digest() if self.encrypt_key else b""
        object.__setattr__(self, "aes_key", key)


class Refused(Exception):
    """The request is not an event to record: answer ``status`` (400 or 401); ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status, self.reason = status, reason

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


@dataclass(frozen=True)
class Challenge:
    """A ``url_verification``: answer ``{"challenge": challenge}``."""

    challenge: str


Decoded = Challenge | RecordedEvent


# ---------------------------------------------------------------------------------------- crypto
def signature_ok(headers: Mapping[str, str], body: bytes, encrypt_key: str) -> bool:
    """``X-Lark-Signature`` = hex SHA-256 of timestamp + nonce + encrypt key, then the raw body."""
    timestamp, nonce = headers.get(TIMESTAMP_HEADER, ""), headers.get(NONCE_HEADER, "")
    expected = hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()
    return hmac.compare_digest(expected.encode(), headers.get(SIGNATURE_HEADER, "").encode())


def is_signed(headers: Mapping[str, str]) -> bool:
    return all(headers.get(name) for name in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER))


def decrypt(encrypted: str, aes_key: bytes) -> bytes:
    """base64 → 16-byte IV + AES-256-CBC ciphertext → PKCS7-unpadded plaintext; ValueError if not."""
    try:
        raw = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) < 32 or len(raw) % 16:
        raise ValueError("not an IV and whole AES blocks")
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(raw[:16])).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()  # ValueError on bad padding


# ---------------------------------------------------------------------------------------- requests
def decode_request(body: bytes, headers: Mapping[str, str], keys: EventKeys) -> Decoded:
    """What one POST to the request URL is; ``Refused`` (400/401) when it is not to be recorded."""
    if not keys.encrypt_key:
        return decode_payload(_json_object(body), keys)
    if is_signed(headers):
        if not signature_ok(headers, body, keys.encrypt_key):
            raise Refused(401, "wrong signature")
        return decode_payload(_json_object(_decrypted_body(body, keys)), keys)
    # Unsigned: only a url_verification may be (the official SDK does not sign-check it). Anything
    # else, or anything that fails on the way, is a request that lacks its signature.
    try:
        decoded = decode_payload(_json_object(_decrypted_body(body, keys)), keys)
    except Refused:
        decoded = None
    if not isinstance(decoded, Challenge):
        raise Refused(401, "missing signature")
    return decoded


def _decrypted_body(body: bytes, keys: EventKeys) -> bytes:
    encrypted = _json_object(body).get("encrypt")
    if not isinstance(encrypted, str):
        raise Refused(400, "an Encrypt Key is set but the body has no 'encrypt' string")
    try:
        return decrypt(encrypted, keys.aes_key)
    except ValueError as exc:
        raise Refused(400, f"the body does not decrypt ({exc})") from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, "the body is not a JSON object")
    return value


def decode_payload(payload: dict[str, Any], keys: EventKeys | None) -> Decoded:
    """A decrypted event: token check (unless ``keys`` is None: a long connection), then its facts."""
    header = payload.get("header")
    schema_2 = payload.get("schema") == "2.0" or isinstance(header, dict)
    if keys is not None:
        token = header.get("token") if schema_2 and isinstance(header, dict) else payload.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode(), keys.verification_token.encode()
        ):
            raise Refused(401, "wrong or missing verification token")
    try:
        if payload.get("type") == URL_VERIFICATION:
            return Challenge(Fields(payload, "").text("challenge", MAX_CHALLENGE_CHARS))
        return _event_v2(payload) if schema_2 else _event_v1(payload)
    except Malformed as exc:
        raise Refused(400, str(exc)) from None


# ---------------------------------------------------------------------------------------- envelopes
@dataclass(frozen=True)
class Envelope:
    """What every event says besides its own fields."""

    event_id: str
    event_type: str
    time_ms: int | None
    tenant_key: str
    event: Fields


def _event_v2(payload: dict[str, Any]) -> RecordedEvent:
    """Schema 2.0: ``{schema, header: {event_id, event_type, create_time, tenant_key, ...}, event}``."""
    top = Fields(payload, "")
    header = top.object("header")
    envelope = Envelope(
        header.token_text("event_id"),
        header.token_text("event_type"),
        millis_from_v2_create_time(header.optional("create_time"), "header.create_time"),
        plain_token(header.optional("tenant_key"), "header.tenant_key"),
        top.object("event"),
    )
    return _recorded(envelope)


def _event_v1(payload: dict[str, Any]) -> RecordedEvent:
    """Schema 1.0: ``{uuid, token, ts, type: "event_callback", event: {type, tenant_key, ...}}``."""
    top = Fields(payload, "")
    if top.text("type", 64) != "event_callback":
        raise Malformed("type is not event_callback")
    event = top.object("event")
    envelope = Envelope(
        top.token_text("uuid"),
        event.token_text("type"),
        millis_from_v1_ts(top.optional("ts"), "ts"),
        plain_token(event.optional("tenant_key"), "event.tenant_key"),
        event,
    )
    return _recorded(envelope)


def _recorded(envelope: Envelope) -> RecordedEvent:
    reader = FACT_READERS.get(envelope.event_type)
    facts = reader(envelope) if reader is not None else ()
    return RecordedEvent(envelope.event_id, facts, envelope.event_type)


# ---------------------------------------------------------------------------------------- facts
def _v2_task(envelope: Envelope) -> tuple[Fact, ...]:
    event = envelope.event
    types = event_types_of(event.required("event_types"), "event.event_types")
    guid = task_id_of(event.required("task_guid"), "event.task_guid")
    deleted = "task_deleted" in types
    return (TaskChange(guid, "v2", types, envelope.time_ms, deleted, envelope.tenant_key),)


def _v1_tenant_task(envelope: Envelope) -> tuple[Fact, ...]:
    event = envelope.event
    task_id = task_id_of(event.required("task_id"), "event.task_id")
    event.optional_text("object_type", 64)  # undocumented values: checked as text, not interpreted
    event.optional_text("event_type", 64)
    return (TaskChange(task_id, "v1", (V1_TENANT_UPDATE,), envelope.time_ms, False, envelope.tenant_key),)


def _v1_task(envelope: Envelope) -> tuple[Fact, ...]:
    event = envelope.event
    task_id = task_id_of(event.required("task_id"), "event.task_id")
    obj_type = event.small_int("obj_type")
    kind = V1_OBJ_TYPES.get(obj_type, V1_TENANT_UPDATE)  # a new kind still marks the task
    deleted = obj_type == V1_DELETED_OBJ_TYPE
    return (TaskChange(task_id, "v1", (kind,), envelope.time_ms, deleted, envelope.tenant_key),)


def _app_ticket(envelope: Envelope) -> tuple[Fact, ...]:
    event = envelope.event
    app_id = plain_token(event.required("app_id"), "event.app_id")
    return (AppTicket(app_id, event.token_text("app_ticket", 1024), envelope.time_ms),)


def _tenant(status: TenantStatus) -> Callable[[Envelope], tuple[Fact, ...]]:
    def read(envelope: Envelope) -> tuple[Fact, ...]:
        key = plain_token(envelope.event.optional("tenant_key"), "event.tenant_key") or envelope.tenant_key
        if not key:
            raise Malformed("no tenant_key")
        return (TenantState(key, status, envelope.time_ms),)

    return read


def _app_status(envelope: Envelope) -> tuple[Fact, ...]:
    """``status``: ``start_by_tenant``, ``stop_by_tenant`` or ``stop_by_platform``."""
    status = envelope.event.text("status", 64)
    return _tenant("active" if status.startswith("start") else "stopped")(envelope)


FACT_READERS: dict[str, Callable[[Envelope], tuple[Fact, ...]]] = {
    V2_TASK_EVENT: _v2_task,
    V1_TENANT_EVENT: _v1_tenant_task,
    V1_TASK_EVENT: _v1_task,
    "app_ticket": _app_ticket,
    "app_open": _tenant("installed"),
    "app_status_change": _app_status,
    "app_uninstalled": _tenant("uninstalled"),
}
