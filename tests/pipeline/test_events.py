"""Decoding Feishu's event requests: one table of cases per decision (events.py is pure).

Requests are sealed by the simulator's half of the protocol (feishu_simulator.events.sealing);
the decryption is also checked on the known answer of Feishu's documentation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from feishu_followers.events import (
    Challenge,
    EventKeys,
    Refused,
    decode_payload,
    decode_request,
    decrypt,
)
from feishu_simulator.events import envelopes
from feishu_simulator.events.sealing import encrypt, seal, signature
from feishu_tasks.journal import AppTicket, RecordedEvent, TaskChange, TenantState

TOKEN, KEY = "vt-0123456789", "ek-abcdef"
GUID = "0d38e26e-190a-49e9-93a2-35067763ed1f"
ORIGIN = envelopes.Origin("cli_app", "2ed263bf32cf1651", TOKEN)
AT = 1_767_225_600_123
PLAIN = EventKeys(TOKEN)
SEALED = EventKeys(TOKEN, KEY)


def v2(event_type: str, event: dict[str, Any], **header: Any) -> dict[str, Any]:
    payload = envelopes.v2_envelope(ORIGIN, "ev-1", event_type, AT, event)
    payload["header"].update(header)
    return payload


def v1(event_type: str, event: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**envelopes.v1_envelope(ORIGIN, "uuid-1", event_type, AT, event), **top}


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_decrypt_gives_the_known_answer_of_feishus_documentation() -> None:
    key = hashlib.sha256(b"test key").digest()
    assert decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=", key) == b"hello world"


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000])
def test_what_the_simulator_encrypts_decrypts(size: int) -> None:
    plain = bytes(range(256)) * 4
    assert decrypt(encrypt(plain[:size], KEY), SEALED.aes_key) == plain[:size]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            v2(
                "task.task.update_user_access_v2",
                {"task_guid": GUID, "event_types": ["task_followers_update"]},
            ),
            TaskChange(GUID, "v2", ("task_followers_update",), AT, False, ORIGIN.tenant_key),
        ),
        (
            v2(
                "task.task.update_user_access_v2",
                {"task_guid": GUID.upper(), "event_types": ["task_deleted"]},
            ),
            TaskChange(GUID, "v2", ("task_deleted",), AT, True, ORIGIN.tenant_key),
        ),
        (
            v2(
                "task.task.update_tenant_v1", {"task_id": GUID, "object_type": "task", "event_type": "update"}
            ),
            TaskChange(GUID, "v1", ("task_update",), AT, False, ORIGIN.tenant_key),
        ),
        (
            v2("task.task.updated_v1", {"task_id": GUID, "obj_type": 3}),
            TaskChange(GUID, "v1", ("task_followers_update",), AT, False, ORIGIN.tenant_key),
        ),
        (
            v2("task.task.updated_v1", {"task_id": GUID, "obj_type": "7"}),
            TaskChange(GUID, "v1", ("task_deleted",), AT, True, ORIGIN.tenant_key),
        ),
        (  # an obj_type Feishu adds later still marks the task
            v2("task.task.updated_v1", {"task_id": GUID, "obj_type": 42}),
            TaskChange(GUID, "v1", ("task_update",), AT, False, ORIGIN.tenant_key),
        ),
        (  # the old envelope: ts in seconds, the tenant in the event
            v1("task.task.updated_v1", {"task_id": GUID, "obj_type": 3}),
            TaskChange(GUID, "v1", ("task_followers_update",), AT, False, ORIGIN.tenant_key),
        ),
        (v1("app_ticket", {"app_ticket": "tk-1"}), AppTicket("cli_app", "tk-1", AT)),
        (v2("app_open", {"tenant_key": "t-9.x"}), TenantState("t-9.x", "installed", AT)),
        (
            v2("app_status_change", {"status": "stop_by_tenant"}),
            TenantState(ORIGIN.tenant_key, "stopped", AT),
        ),
        (
            v2("app_status_change", {"status": "start_by_tenant"}),
            TenantState(ORIGIN.tenant_key, "active", AT),
        ),
        (v2("app_uninstalled", {}), TenantState(ORIGIN.tenant_key, "uninstalled", AT)),
    ],
)
def test_each_event_becomes_the_journals_fact(payload: dict[str, Any], expected: object) -> None:
    decoded = decode_request(body(payload), {}, PLAIN)
    assert isinstance(decoded, RecordedEvent)
    assert decoded.facts == (expected,)
    assert decoded.event_id in ("ev-1", "uuid-1")


def test_an_unknown_type_is_an_event_without_facts() -> None:
    decoded = decode_request(body(v2("im.message.receive_v1", {"anything": [1, 2]})), {}, PLAIN)
    assert decoded == RecordedEvent("ev-1", (), "im.message.receive_v1")


@pytest.mark.parametrize("keys", [PLAIN, SEALED])
def test_url_verification_plain_and_encrypted_unsigned(keys: EventKeys) -> None:
    raw, headers = seal(envelopes.url_verification("c-42", TOKEN), keys.encrypt_key)
    unsigned = {k: v for k, v in headers.items() if not k.startswith("X-Lark")}
    assert decode_request(raw, unsigned, keys) == Challenge("c-42")
    assert decode_request(raw, headers, keys) == Challenge("c-42")  # signed: fine too


def test_a_sealed_event_decodes() -> None:
    payload = v2("task.task.update_user_access_v2", {"task_guid": GUID, "event_types": ["task_create"]})
    raw, headers = seal(payload, KEY)
    decoded = decode_request(raw, headers, SEALED)
    assert isinstance(decoded, RecordedEvent) and decoded.facts[0].task_id == GUID  # type: ignore[union-attr]


def _sealed(payload: Any, **header_changes: str | None) -> tuple[bytes, dict[str, str]]:
    raw, headers = seal(payload, KEY)
    for name, value in header_changes.items():
        headers.pop(name, None) if value is None else headers.__setitem__(name, value)
    return raw, headers


GOOD = v2("task.task.update_user_access_v2", {"task_guid": GUID, "event_types": ["task_create"]})
SIG = "X-Lark-Signature"


@pytest.mark.parametrize(
    ("keys", "request_parts", "reason"),
    [
        (PLAIN, (body({**GOOD, "header": {**GOOD["header"], "token": "wrong"}}), {}), "verification token"),
        (PLAIN, (body({**GOOD, "header": {**GOOD["header"], "token": None}}), {}), "verification token"),
        (PLAIN, (body({k: v for k, v in GOOD.items() if k != "header"}), {}), "verification token"),
        (PLAIN, (body(v1("app_ticket", {"app_ticket": "x"}, token="nope")), {}), "verification token"),
        (PLAIN, (body(envelopes.url_verification("c", "wrong")), {}), "verification token"),
        (SEALED, _sealed(GOOD, **{SIG: "0" * 64}), "wrong signature"),
        (SEALED, _sealed(GOOD, **{SIG: None}), "missing signature"),
        (SEALED, _sealed(GOOD, **{"X-Lark-Request-Nonce": "other"}), "wrong signature"),
        (SEALED, (body(GOOD), {}), "missing signature"),  # plain, unsigned: not Feishu's
        (SEALED, _sealed({**GOOD, "header": {**GOOD["header"], "token": "x"}}), "verification token"),
    ],
)
def test_not_from_feishu_is_401(
    keys: EventKeys, request_parts: tuple[bytes, dict[str, str]], reason: str
) -> None:
    with pytest.raises(Refused) as refused:
        decode_request(*request_parts, keys)
    assert refused.value.status == 401 and reason in refused.value.reason


def _signed(raw: bytes) -> tuple[bytes, dict[str, str]]:
    return raw, {
        "X-Lark-Request-Timestamp": "1",
        "X-Lark-Request-Nonce": "n",
        SIG: signature("1", "n", KEY, raw),
    }


def _event(**event: Any) -> bytes:
    return body(v2("task.task.update_user_access_v2", event))


@pytest.mark.parametrize(
    ("keys", "request_parts", "reason"),
    [
        (PLAIN, (b"not json", {}), "not JSON"),
        (PLAIN, (b"\xff\xfe", {}), "not JSON"),
        (PLAIN, (b"[1, 2]", {}), "not a JSON object"),
        (SEALED, _signed(b"{}"), "no 'encrypt'"),
        (SEALED, _signed(body({"encrypt": "%%%"})), "does not decrypt"),
        (SEALED, _signed(body({"encrypt": "QUJD"})), "does not decrypt"),
        (SEALED, _signed(body({"encrypt": encrypt(b"x" * 16, "another key")})), "does not decrypt"),
        (SEALED, _signed(body({"encrypt": encrypt(b"not json", KEY)})), "not JSON"),
        (PLAIN, (_event(task_guid=GUID), {}), "event.event_types is missing"),
        (PLAIN, (_event(task_guid="t104121", event_types=["task_create"]), {}), "not a task id"),
        (PLAIN, (_event(task_guid=GUID * 2, event_types=["task_create"]), {}), "not a task id"),
        (PLAIN, (_event(task_guid=7, event_types=["task_create"]), {}), "not a task id"),
        (PLAIN, (_event(task_guid=GUID, event_types=[]), {}), "event.event_types"),
        (PLAIN, (_event(task_guid=GUID, event_types="task_create"), {}), "event.event_types"),
        (PLAIN, (_event(task_guid=GUID, event_types=["Robert'); drop"]), {}), "event.event_types"),
        (PLAIN, (body(v2("app_open", {}, tenant_key="a b")), {}), "header.tenant_key"),
        (PLAIN, (body(v2("app_open", {}, tenant_key="k" * 200)), {}), "header.tenant_key"),
        (PLAIN, (body(v2("app_open", {}, create_time="yesterday")), {}), "header.create_time"),
        (PLAIN, (body(v2("app_open", {}, event_id="")), {}), "header.event_id"),
        (PLAIN, (body(v2("app_open", {}, event_id="a b")), {}), "header.event_id"),
        (PLAIN, (body(v2("app_open", {}, event_id=["x"])), {}), "header.event_id"),
        (PLAIN, (body({**v2("app_open", {}), "event": None}), {}), "event is missing"),
        (PLAIN, (body(v2("app_open", {}, tenant_key=None)), {}), "no tenant_key"),
        (PLAIN, (body(v2("task.task.updated_v1", {"task_id": GUID, "obj_type": True})), {}), "obj_type"),
        (PLAIN, (body(v1("app_ticket", {})), {}), "event.app_ticket is missing"),
        (PLAIN, (body(v1("app_ticket", {"app_ticket": "x"}, ts="soon")), {}), "ts is not"),
        (PLAIN, (body(v1("app_ticket", {"app_ticket": "x"}, type="other")), {}), "event_callback"),
        (PLAIN, (body(envelopes.url_verification("", TOKEN)), {}), "challenge"),
    ],
)
def test_from_feishu_but_unusable_is_400(
    keys: EventKeys, request_parts: tuple[bytes, dict[str, str]], reason: str
) -> None:
    with pytest.raises(Refused) as refused:
        decode_request(*request_parts, keys)
    assert refused.value.status == 400 and reason in refused.value.reason


def test_messages_name_fields_never_values_or_secrets() -> None:
    secretish = "s3cr3t-value-" * 3
    cases = [
        body(v2("app_open", {}, event_id=secretish + " ")),
        body(v2("task.task.update_user_access_v2", {"task_guid": secretish, "event_types": ["x"]})),
        body({**GOOD, "header": {**GOOD["header"], "token": secretish}}),
    ]
    for raw in cases:
        with pytest.raises(Refused) as refused:
            decode_request(raw, {}, PLAIN)
        assert secretish not in str(refused.value) and TOKEN not in str(refused.value)
    assert TOKEN not in repr(SEALED) and KEY not in repr(SEALED)


def test_a_long_connections_payload_is_decoded_without_the_token() -> None:
    payload = {**GOOD, "header": {**GOOD["header"], "token": ""}}
    decoded = decode_payload(payload, None)
    assert isinstance(decoded, RecordedEvent) and decoded.event_id == "ev-1"
