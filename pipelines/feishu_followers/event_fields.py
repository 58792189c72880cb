"""Reading an event's fields with their types and sizes checked: a bad field is ``Malformed``
(the receiver answers 400), never a ``KeyError`` or a value we store unchecked.

Every message names the field by its path (``event.task_guid``), never its value: a value can
be anything a sender chose to put there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from feishu_tasks.task_ids import normalize_task_id

MAX_TOKEN_CHARS = 128
MAX_EVENT_TYPES = 32
# An id, type name or key: printable ASCII without spaces or quotes.
_TOKEN_TEXT = re.compile(r"[!#-&(-~]+")
# A tenant key or app id: letters, digits, '_', '-', '.' (the rule of store_app.check_tenant_key,
# kept here too because store_app imports the HTTP client, which the receiver must not load).
_PLAIN = re.compile(r"[A-Za-z0-9_.-]+")
_EVENT_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_DIGITS = re.compile(r"\d{1,16}")
_V1_TS = re.compile(r"\d{1,12}(\.\d{1,9})?")


class Malformed(ValueError):
    """A field is missing or not what it must be; ``str()`` names the field."""


@dataclass(frozen=True)
class Fields:
    """A JSON object and where it sits (``header``, ``event``), for messages that name the field."""

    data: dict[str, Any]
    path: str

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def optional(self, key: str) -> Any:
        return self.data.get(key)

    def required(self, key: str) -> Any:
        if key not in self.data or self.data[key] is None:
            raise Malformed(f"{self.name(key)} is missing")
        return self.data[key]

    def object(self, key: str) -> Fields:
        value = self.required(key)
        if not isinstance(value, dict):
            raise Malformed(f"{self.name(key)} is not an object")
        return Fields(value, self.name(key))

    def text(self, key: str, max_chars: int) -> str:
        value = self.required(key)
        if not isinstance(value, str) or not value or len(value) > max_chars:
            raise Malformed(f"{self.name(key)} is not a string of 1 to {max_chars} characters")
        return value

    def optional_text(self, key: str, max_chars: int) -> str | None:
        return None if self.data.get(key) is None else self.text(key, max_chars)

    def token_text(self, key: str, max_chars: int = MAX_TOKEN_CHARS) -> str:
        """An id or a type name: printable ASCII, no spaces or quotes."""
        value = self.text(key, max_chars)
        if not _TOKEN_TEXT.fullmatch(value):
            raise Malformed(f"{self.name(key)} has characters an id does not have")
        return value

    def small_int(self, key: str) -> int:
        """A whole number 0..999 given as a JSON number or a string of digits."""
        value = self.required(key)
        if isinstance(value, str) and value.isdigit() and len(value) <= 3:
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999:
            return value
        raise Malformed(f"{self.name(key)} is not a small whole number")


def task_id_of(value: Any, name: str) -> str:
    """A task id or guid: a UUID (as the API's ids are), canonical lower case."""
    task_id = normalize_task_id(value) if isinstance(value, str) and len(value) <= 64 else None
    if task_id is None:
        raise Malformed(f"{name} is not a task id (a UUID)")
    return task_id


def plain_token(value: Any, name: str) -> str:
    """A tenant key or app id (empty when absent): letters, digits, '_', '-', '.'."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_TOKEN_CHARS or not _PLAIN.fullmatch(value):
        raise Malformed(f"{name} is not a plain key (letters, digits, '_', '-', '.')")
    return value


def event_types_of(value: Any, name: str) -> tuple[str, ...]:
    """v2's ``event_types``: a non-empty list of lower-case names, each once, as sent."""
    if not isinstance(value, list) or not value or len(value) > MAX_EVENT_TYPES:
        raise Malformed(f"{name} is not a list of 1 to {MAX_EVENT_TYPES} names")
    for item in value:
        if not isinstance(item, str) or len(item) > 64 or not _EVENT_TYPE_NAME.fullmatch(item):
            raise Malformed(f"{name} holds something that is not an event type name")
    return tuple(dict.fromkeys(value))


def millis_from_v2_create_time(value: Any, name: str) -> int | None:
    """Schema 2.0's ``create_time``: Unix milliseconds as a string (or a number)."""
    if value is None:
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**16:
        return value
    raise Malformed(f"{name} is not Unix milliseconds")


def millis_from_v1_ts(value: Any, name: str) -> int | None:
    """Schema 1.0's ``ts``: Unix seconds as a string with a fraction (``"1502199207.7171419"``)."""
    if value is None:
        return None
    if isinstance(value, str) and _V1_TS.fullmatch(value):
        return int(float(value) * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 10**12:
        return int(value * 1000)
    raise Malformed(f"{name} is not Unix seconds")
