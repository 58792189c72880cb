"""Fault settings: every way the simulated API can misbehave, all off by default.

A ``Faults`` object is read afresh on every request, so a test may change any
field while the server runs and the next request sees it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Kinds of bad answer that replace the whole HTTP answer (status 200), as a proxy, a gateway
#: or a cut connection produce them. ``trickle`` sends the real answer one byte at a time.
BODY_KINDS = (
    "html",  # a proxy's HTML page
    "truncated_json",  # the real JSON cut in half
    "json_array",  # the real JSON inside [ ]
    "bad_gzip",  # Content-Encoding: gzip on bytes that do not decompress
    "empty",  # no body at all
    "binary",  # bytes that are not text
    "no_code",  # a JSON object without the envelope's integer code
    "trickle",  # the real answer, one byte every trickle_interval_seconds
)
#: Kinds that keep Feishu's envelope (code 0) but break the page inside it.
PAGE_KINDS = (
    "more_without_token",  # has_more true, page_token absent
    "more_empty_token",  # has_more true, page_token ""
    "data_null",
    "data_missing",
    "data_not_object",  # data is a list
    "items_not_list",  # items is a string
    "items_null",
    "has_more_not_bool",  # has_more is the string "false"
    "page_token_list",  # has_more true, page_token a list
    "item_not_object",  # the first item is a bare string
    "id_null",  # the first item's id is null
    "id_number",
    "id_bool",
    "id_list",  # the first item's id is a list of two ids
    "id_object",
    "id_empty",
    "id_list_not_list",  # the first item's id_list is a string
    "id_list_bad_value",  # the first item's id_list holds a number and a null
)
#: Kinds that make a task's pages (or the listing) never end, with a fresh page_token each time.
ENDLESS_KINDS = (
    "endless",  # after the real pages, empty pages with has_more true
    "endless_items",  # pages always full: made-up followers after the real ones
)
#: What ``bad_answer_fraction`` draws from unless ``random_bad_kinds`` says otherwise:
#: every kind that spoils one answer, but not the slow trickle.
RANDOM_KINDS = tuple(kind for kind in BODY_KINDS + PAGE_KINDS if kind != "trickle")


@dataclass
class PageFault:
    """How the pages of one task (or of the task listing) misbehave; JSON: the same fields."""

    #: One of BODY_KINDS, PAGE_KINDS or ENDLESS_KINDS.
    kind: str
    #: First follower page (1-based) it applies to; earlier pages are answered normally.
    #: The listing ignores it (every listing page qualifies).
    page: int = 1
    #: Answers to spoil before answering normally again (None: every one from ``page`` on).
    times: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in BODY_KINDS + PAGE_KINDS + ENDLESS_KINDS:
            raise ValueError(f"unknown page fault kind {self.kind!r}")

    def applies(self, page: int) -> bool:
        """Whether this answer is spoiled; counts ``times`` down when it is."""
        if page < self.page or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass
class Faults:
    """Knobs for latency, quotas, random failures, token and pagination quirks."""

    #: Delay (asyncio.sleep) before answering each business request.
    latency_ms: float = 0.0
    #: Apply ``latency_ms`` to the token endpoint too.
    latency_on_token: bool = False

    #: Business requests allowed per sliding 1-second window (None = unlimited).
    quota_per_second: int | None = None
    #: Business requests allowed per sliding 60-second window (None = unlimited).
    quota_per_minute: int | None = None
    #: Endpoint -> (per_second, per_minute) replacing the two defaults above for that endpoint
    #: (None in the pair: no limit for that window).  Every endpoint has its own windows either
    #: way.  Names: followers, list_tasks, get_task, v2_tasklists, v2_tasklist_tasks, v2_get_task;
    #: ``quota.DOCUMENTED_LIMITS`` holds the documented figures.
    quota_per_endpoint: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    #: HTTP status of rate-limit answers (body code is always 99991400); some APIs use 400.
    rate_limit_http_status: int = 429
    #: Share of business requests answered with a rate-limit error regardless of quota.
    rate_limit_fraction: float = 0.0
    #: ``x-ogw-ratelimit-reset`` sent with those random rate-limit answers.
    storm_reset_seconds: int = 1

    #: Share of business requests answered HTTP 500 / code 1470605.
    error_500_fraction: float = 0.0
    #: Share of business requests answered HTTP 502 with an HTML (non-JSON) body.
    html_502_fraction: float = 0.0
    #: task id -> how many more follower-list requests for it fail with 500; counts down.
    fail_first_n_requests_for: dict[str, int] = field(default_factory=dict)
    #: Task ids whose follower-list requests always fail with 500.
    always_fail_tasks: set[str] = field(default_factory=set)
    #: Task id -> business code its follower-list requests always get (e.g. a token error
    #: 99991663 or 1470403 for this task only), with ``token_error_http_status``.
    task_codes: dict[str, int] = field(default_factory=dict)

    #: Lifetime of newly issued tenant tokens; expired tokens get code 99991663.
    token_ttl_seconds: int = 7200
    #: HTTP status for token errors (99991661/63/68/71/77); upstream shows 400, 200 reported.
    token_error_http_status: int = 400
    #: Prefix of issued tenant tokens; anything but "t-" makes them the wrong type (403/1470403).
    tenant_token_prefix: str = "t-"

    #: Tasks whose follower pages all carry the same page_token with has_more true.
    repeat_page_token_tasks: set[str] = field(default_factory=set)
    #: The last follower page carries a non-empty page_token (has_more stays false).
    page_token_on_last_page: bool = False
    #: The last follower page says has_more true but its page_token is "".
    omit_has_more_with_empty_token: bool = False

    #: Task v2: timestamps (created_at, due.timestamp, archive_msec, ...) as JSON numbers, not strings.
    v2_numeric_timestamps: bool = False
    #: Task v2: counts (subtask_count) as JSON strings, not numbers.
    v2_string_counts: bool = False
    #: Task v2: the last page carries ``page_token: ""`` (the v2 overview's rule) instead of none
    #: (each endpoint page's rule).
    v2_empty_page_token_on_last_page: bool = False

    #: Task id -> PageFault: targeted misbehaviour of that task's follower pages.
    page_faults: dict[str, PageFault] = field(default_factory=dict)
    #: PageFault of the task listing (GET /open-apis/task/v1/tasks), or None.
    list_tasks_fault: PageFault | None = None
    #: Share of business answers (after the gate) replaced by a bad answer of a random kind.
    bad_answer_fraction: float = 0.0
    #: The kinds ``bad_answer_fraction`` draws from (BODY_KINDS and PAGE_KINDS; default RANDOM_KINDS).
    random_bad_kinds: list[str] = field(default_factory=lambda: list(RANDOM_KINDS))
    #: Seconds between two bytes of a ``trickle`` answer.
    trickle_interval_seconds: float = 2.0

    #: The next N token requests answer HTTP 429 / code 99991400; counts down.
    token_rate_limit_times: int = 0
    #: ``x-ogw-ratelimit-reset`` sent with those token 429s.
    token_rate_limit_reset_seconds: int = 1
    #: The next N token requests answer HTTP 500 (a JSON error body); counts down.
    token_error_500_times: int = 0
    #: The next N token requests answer a bad body of ``token_bad_body_kind``; counts down.
    token_bad_body_times: int = 0
    #: One of BODY_KINDS, for ``token_bad_body_times``.
    token_bad_body_kind: str = "html"
    #: ``expire`` of token answers: "real" (seconds left), or "zero", "negative", "missing",
    #: "null", "string" (a word), "tiny" (0.001 s).
    token_expire: str = "real"

    #: Seed of the generator behind every random fault (deterministic per request order).
    seed: int = 0

    def quota_for(self, endpoint: str) -> tuple[int | None, int | None]:
        """(per_second, per_minute) for one endpoint: its override, else the defaults."""
        override = (self.quota_per_endpoint or {}).get(endpoint)
        if override is None:
            return self.quota_per_second, self.quota_per_minute
        per_second, per_minute = override
        return per_second, per_minute

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (sets become sorted lists) for the control endpoint."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, set):
                out[key] = sorted(value)
        return out

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update from JSON, converting lists back to sets where needed."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        for key, value in changes.items():
            if isinstance(getattr(self, key), set) and value is not None:
                value = set(value)
            elif key == "page_faults":
                value = {task: _page_fault(spec) for task, spec in (value or {}).items()}
            elif key == "list_tasks_fault" and value is not None:
                value = _page_fault(value)
            setattr(self, key, value)


def _page_fault(spec: PageFault | dict[str, Any] | str) -> PageFault:
    """A PageFault from its JSON form (an object, or just the kind)."""
    if isinstance(spec, PageFault):
        return spec
    if isinstance(spec, str):
        return PageFault(spec)
    return PageFault(**spec)
