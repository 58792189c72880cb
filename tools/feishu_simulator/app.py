"""The aiohttp application: routes, the gate every business request passes, handlers.

Handlers are synchronous functions behind one async wrapper, so a request costs
an auth lookup, a quota check, a few optional dice rolls and one page render.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import paging, v2
from .auth import WRONG_TOKEN_TYPE, TokenStore
from .bad_answers import bad_body_response, is_body_kind, spoil_page
from .faults import ENDLESS_KINDS, Faults
from .quota import EndpointQuotas
from .stats import Stats
from .world import ID_TYPES, TaskForbidden, TaskNotFound, World

log = logging.getLogger(__name__)

TASK_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FOLLOWERS_MAX_PAGE = 50
TASKS_MAX_PAGE = 100
DEFAULT_PAGE = 50
STORM_LIMIT_HEADER = 50  # x-ogw-ratelimit-limit for random storms when no per-second quota is set

FIELD_VALIDATION = (99992402, "field validation failed")
PAGE_SIZE_TOO_LARGE = (1470421, "page_size is too large")
PAGE_TOKEN_INVALID = (1470422, "page_token is invalid")
INVALID_TASK_ID = (1470602, "invalid task id")
TASK_NOT_FOUND = (1470602, "task not found")
NO_PERMISSION = (1470432, "no permission to get the task")
INTERNAL_ERROR = (1470605, "internal error")
RATE_LIMITED = (99991400, "request trigger frequency limit")
BAD_CREDENTIALS = (10003, "invalid param")

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
JSON_TYPE = "application/json; charset=utf-8"
# request[FAULT_KEY]: the bad-answer kind a handler chose for its answer (aiohttp >= 3.13 wants a typed key)
FAULT_KEY: Any = web.RequestKey("feishu_simulator_fault", str) if hasattr(web, "RequestKey") else "fault"
FAR_CREATE_TIME = 10**12  # listing cursors past every task, for endless listings
TOKEN_INTERNAL_ERROR = (-1, "internal error")

Answer = tuple[int, dict[str, Any]]
Handler = Callable[[web.Request, Faults], Answer]


class ParamError(Exception):
    """A query parameter is wrong; carries the (code, msg) to answer with HTTP 400."""

    def __init__(self, error: tuple[int, str]) -> None:
        super().__init__(error[1])
        self.error = error


def _ok(data: dict[str, Any]) -> Answer:
    return 200, {"code": 0, "msg": "success", "data": data}


def _fail(error: tuple[int, str], status: int = 400) -> Answer:
    return status, {"code": error[0], "msg": error[1]}


def _page_size(raw: str | None, maximum: int) -> int:
    """page_size: default 50, a positive integer, at most ``maximum`` (else 1470421)."""
    if raw is None or raw == "":
        return min(DEFAULT_PAGE, maximum)
    if not raw.isdigit() or int(raw) < 1:
        raise ParamError(FIELD_VALIDATION)
    size = int(raw)
    if size > maximum:
        raise ParamError(PAGE_SIZE_TOO_LARGE)
    return size


def _id_type(raw: str | None) -> str:
    """user_id_type: open_id by default, else one of the three known types."""
    if raw is None or raw == "":
        return "open_id"
    if raw not in ID_TYPES:
        raise ParamError(FIELD_VALIDATION)
    return raw


def _seconds(raw: str | None) -> int | None:
    """A create-time bound: a string of Unix seconds, or absent."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ParamError(FIELD_VALIDATION)
    return int(raw)


def _flag(raw: str | None) -> bool | None:
    """task_completed: true/false (any case), or absent."""
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise ParamError(FIELD_VALIDATION)
    return lowered == "true"


def _fails_now(task_id: str, faults: Faults) -> bool:
    """Whether this follower request of ``task_id`` is one of its scripted 500s."""
    if task_id in faults.always_fail_tasks:
        return True
    remaining = faults.fail_first_n_requests_for.get(task_id, 0)
    if remaining > 0:
        faults.fail_first_n_requests_for[task_id] = remaining - 1
        return True
    return False


def _follower_page_data(
    task_id: str,
    items: list[dict[str, Any]],
    offset: int,
    size: int,
    total: int,
    endless: str | None,
    faults: Faults,
) -> dict[str, Any]:
    """A follower page's ``data``: items, has_more and page_token, as the pagination faults say."""
    end = offset + len(items)
    data: dict[str, Any] = {"items": items, "has_more": end < total}
    if endless is not None:  # a fresh token every time, so only a bound ends the paging
        if endless == "endless_items":
            items.extend({"id": f"ou_endless_{offset + i:012d}"} for i in range(len(items), size))
        data["has_more"] = True
        data["page_token"] = paging.follower_token(task_id, offset + size)
    elif task_id in faults.repeat_page_token_tasks:
        data["has_more"] = True
        data["page_token"] = paging.follower_token(task_id, size)
    elif end < total:
        data["page_token"] = paging.follower_token(task_id, end)
    elif faults.omit_has_more_with_empty_token:
        data["has_more"] = True
        data["page_token"] = ""
    elif faults.page_token_on_last_page:
        data["page_token"] = paging.follower_token(task_id, end)
    return data


class SimulatorApp:
    """State shared by the handlers: world, faults, tokens, quota, stats, fault dice."""

    def __init__(self, world: World, faults: Faults, tokens: TokenStore, stats: Stats) -> None:
        self.world = world
        self.faults = faults
        self.tokens = tokens
        self.stats = stats
        self.quota = EndpointQuotas()
        self._rng = random.Random(faults.seed)
        self._rng_key: tuple[int, int] = (id(faults), faults.seed)
        self._salt = secrets.token_hex(3).upper()
        self._counter = itertools.count(1)
        self._stamp_second = -1
        self._stamp = ""

    # ------------------------------------------------------------------ plumbing
    def build(self) -> web.Application:
        """The aiohttp application with every route, the catch-all 404 last."""
        app = web.Application()
        r = app.router
        r.add_post("/open-apis/auth/v3/tenant_access_token/internal", self.token)
        r.add_get(
            "/open-apis/task/v1/tasks/{task_id}/followers",
            self._route("followers", self.followers),
        )
        r.add_get("/open-apis/task/v1/tasks", self._route("list_tasks", self.list_tasks))
        r.add_get("/open-apis/task/v1/tasks/{task_id}", self._route("get_task", self.get_task))
        for path, endpoint, handler in v2.V2Api(self.world, self.tokens.app_id).routes():
            r.add_get(path, self._route(endpoint, handler))
        r.add_get("/_sim/stats", self.control_stats)
        r.add_post("/_sim/reset_stats", self.control_reset_stats)
        r.add_post("/_sim/expire_tokens", self.control_expire_tokens)
        r.add_get("/_sim/faults", self.control_faults)
        r.add_post("/_sim/faults", self.control_faults)
        r.add_route("*", "/{tail:.*}", self.not_found)
        return app

    def log_id(self) -> str:
        """A unique log id shaped like the real ones: UTC timestamp + hex."""
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
        return f"{self._stamp}{self._salt}{next(self._counter):012X}"

    def dice(self, faults: Faults) -> random.Random:
        """The fault generator, reseeded when the Faults object or its seed changes."""
        key = (id(faults), faults.seed)
        if key != self._rng_key:
            self._rng_key = key
            self._rng = random.Random(faults.seed)
        return self._rng

    def json_response(self, answer: Answer, headers: dict[str, str] | None = None) -> web.Response:
        """Serialize an answer; error bodies get the ``error`` block with the log id."""
        status, body = answer
        log_id = self.log_id()
        if body.get("code"):
            body["error"] = {
                "log_id": log_id,
                "troubleshooter": (
                    "排查建议查看(Troubleshooting suggestions): https://open.feishu.cn/search"
                    f"?from=openapi&log_id={log_id}&code={body['code']}"
                ),
            }
        all_headers = {"Content-Type": JSON_TYPE, "X-Tt-Logid": log_id}
        if headers:
            all_headers.update(headers)
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return web.Response(status=status, body=payload, headers=all_headers)

    def rate_limited(self, faults: Faults, limit: int, reset: int) -> web.Response:
        """The gateway's rate-limit answer with its two headers (reset = seconds to wait)."""
        return self.json_response(
            _fail(RATE_LIMITED, faults.rate_limit_http_status),
            {"x-ogw-ratelimit-limit": str(limit), "x-ogw-ratelimit-reset": str(reset)},
        )

    def _route(self, endpoint: str, handler: Handler) -> Callable[[web.Request], Any]:
        """Wrap a sync business handler with latency, the gate, error capture and stats."""

        async def run(request: web.Request) -> web.StreamResponse:
            arrived = time.time()
            faults = self.faults
            if faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            response: web.StreamResponse | None = self.gate(request, faults, endpoint)
            if response is None:
                try:
                    answer = handler(request, faults)
                except ParamError as exc:
                    answer = _fail(exc.error)
                except Exception:  # a simulator bug must still answer like a server
                    log.exception("simulator handler failed")
                    answer = _fail(INTERNAL_ERROR, 500)
                response = await self.respond(request, answer, faults)
            limited = "x-ogw-ratelimit-limit" in response.headers
            self.stats.record(endpoint, response.status, arrived, rate_limited=limited)
            return response

        return run

    async def respond(self, request: web.Request, answer: Answer, faults: Faults) -> web.StreamResponse:
        """The answer as JSON, or spoiled as the handler's targeted fault or a random one says."""
        kind = request.get(FAULT_KEY) or self.random_bad_kind(faults)
        if kind is None:
            return self.json_response(answer)
        if is_body_kind(kind):
            interval = faults.trickle_interval_seconds
            return await bad_body_response(request, kind, answer, self.log_id(), interval)
        return self.json_response(spoil_page(answer, kind))

    def random_bad_kind(self, faults: Faults) -> str | None:
        """A kind from ``random_bad_kinds`` for ``bad_answer_fraction`` of the answers, else None."""
        if faults.bad_answer_fraction <= 0 or not faults.random_bad_kinds:
            return None
        dice = self.dice(faults)
        if dice.random() >= faults.bad_answer_fraction:
            return None
        return dice.choice(faults.random_bad_kinds)

    def gate(self, request: web.Request, faults: Faults, endpoint: str = "") -> web.Response | None:
        """Auth, random rate-limit storm, quota, random 502/500 -- in that order.

        Storm and quota rejections do not consume quota; 502/500 answers do
        (they happen behind the gateway).  Auth failures consume nothing.
        Each endpoint has its own quota windows (``Faults.quota_for``).
        """
        error = self.tokens.check(request.headers.get("Authorization"))
        if error is not None:
            status = 403 if error == WRONG_TOKEN_TYPE else faults.token_error_http_status
            return self.json_response(_fail(error, status))
        dice = self.dice(faults)
        per_second, per_minute = faults.quota_for(endpoint)
        if faults.rate_limit_fraction > 0 and dice.random() < faults.rate_limit_fraction:
            return self.rate_limited(
                faults,
                per_second or STORM_LIMIT_HEADER,
                faults.storm_reset_seconds,
            )
        over = self.quota.admit(endpoint, per_second, per_minute, time.monotonic())
        if over is not None:
            return self.rate_limited(faults, *over)
        if faults.html_502_fraction > 0 and dice.random() < faults.html_502_fraction:
            return web.Response(
                status=502,
                body=HTML_502,
                headers={"Content-Type": "text/html", "X-Tt-Logid": self.log_id()},
            )
        if faults.error_500_fraction > 0 and dice.random() < faults.error_500_fraction:
            internal = v2.SERVER_ERROR if endpoint in v2.ENDPOINTS else INTERNAL_ERROR
            return self.json_response(_fail(internal, 500))
        return None

    # ------------------------------------------------------------------ business handlers
    def followers(self, request: web.Request, faults: Faults) -> Answer:
        """List followers: offset-based pages behind opaque tokens bound to the task."""
        query = request.query
        id_type = _id_type(query.get("user_id_type"))
        size = _page_size(query.get("page_size"), FOLLOWERS_MAX_PAGE)
        task_id = request.match_info["task_id"]
        if not TASK_ID_RE.match(task_id):
            return _fail(INVALID_TASK_ID)
        token = query.get("page_token") or ""
        offset = 0
        if token:
            parsed = paging.follower_offset(token, task_id)
            if parsed is None:
                return _fail(PAGE_TOKEN_INVALID)
            offset = parsed
        if _fails_now(task_id, faults):
            return _fail(INTERNAL_ERROR, 500)
        if task_id in faults.task_codes:  # one task refused with a code the others never get
            refusal = (faults.task_codes[task_id], "refused for this task")
            return _fail(refusal, faults.token_error_http_status)
        try:
            items, total = self.world.follower_page(task_id, offset, size, id_type)
        except TaskNotFound:
            return _fail(TASK_NOT_FOUND)
        except TaskForbidden:
            return _fail(NO_PERMISSION)
        endless = None
        fault = faults.page_faults.get(task_id)
        if fault is not None and fault.applies(offset // size + 1):
            if fault.kind in ENDLESS_KINDS:
                endless = fault.kind
            else:
                request[FAULT_KEY] = fault.kind
        return _ok(_follower_page_data(task_id, items, offset, size, total, endless, faults))

    def list_tasks(self, request: web.Request, faults: Faults) -> Answer:
        """List readable tasks by (create_time, id) with inclusive create-time filters."""
        query = request.query
        id_type = _id_type(query.get("user_id_type"))
        size = _page_size(query.get("page_size"), TASKS_MAX_PAGE)
        start = _seconds(query.get("start_create_time"))
        end = _seconds(query.get("end_create_time"))
        completed = _flag(query.get("task_completed"))
        token = query.get("page_token") or ""
        after = None
        if token:
            after = paging.list_cursor(token)
            if after is None:
                return _fail(PAGE_TOKEN_INVALID)
        items, cursor = self.world.list_tasks(
            limit=size,
            user_id_type=id_type,
            after=after,
            start=start,
            end=end,
            completed=completed,
        )
        fault = faults.list_tasks_fault
        if fault is not None and fault.applies(fault.page):
            if fault.kind in ENDLESS_KINDS and cursor is None:  # past the end: a fresh cursor each time
                cursor = (max(FAR_CREATE_TIME, after[0] + 1 if after else 0), "")
            elif fault.kind not in ENDLESS_KINDS:
                request[FAULT_KEY] = fault.kind
        data: dict[str, Any] = {"items": items, "has_more": cursor is not None}
        if cursor is not None:
            data["page_token"] = paging.list_token(cursor)
        return _ok(data)

    def get_task(self, request: web.Request, faults: Faults) -> Answer:
        """One task object under ``data.task``."""
        id_type = _id_type(request.query.get("user_id_type"))
        task_id = request.match_info["task_id"]
        if not TASK_ID_RE.match(task_id):
            return _fail(INVALID_TASK_ID)
        try:
            return _ok({"task": self.world.get_task(task_id, id_type)})
        except TaskNotFound:
            return _fail(TASK_NOT_FOUND)
        except TaskForbidden:
            return _fail(NO_PERMISSION)

    # ------------------------------------------------------------------ other endpoints
    async def token(self, request: web.Request) -> web.StreamResponse:
        """Tenant token for the app: flat answer, bad credentials are HTTP 200 / 10003."""
        arrived = time.time()
        faults = self.faults
        if faults.latency_on_token and faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not self.tokens.credentials_ok(
            body.get("app_id"), body.get("app_secret")
        ):
            answer = _fail(BAD_CREDENTIALS, 200)
        else:
            token, expire = self.tokens.issue(faults.token_ttl_seconds, faults.tenant_token_prefix)
            answer = (200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire})
            _spoil_expire(answer[1], faults.token_expire)
        response = await self.token_response(request, answer, faults)
        self.stats.record("token", response.status, arrived)
        return response

    async def token_response(
        self, request: web.Request, answer: Answer, faults: Faults
    ) -> web.StreamResponse:
        """The token answer, unless a token fault (429, 500, bad body; each counts down) replaces it."""
        if faults.token_rate_limit_times > 0:
            faults.token_rate_limit_times -= 1
            reset = str(faults.token_rate_limit_reset_seconds)
            headers = {"x-ogw-ratelimit-limit": "5", "x-ogw-ratelimit-reset": reset}
            return self.json_response(_fail(RATE_LIMITED, 429), headers)
        if faults.token_error_500_times > 0:
            faults.token_error_500_times -= 1
            return self.json_response(_fail(TOKEN_INTERNAL_ERROR, 500))
        if faults.token_bad_body_times > 0:
            faults.token_bad_body_times -= 1
            kind, interval = faults.token_bad_body_kind, faults.trickle_interval_seconds
            return await bad_body_response(request, kind, answer, self.log_id(), interval)
        return self.json_response(answer)

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """Unknown path or method: a gateway-style plain-text 404 (not JSON)."""
        self.stats.record("not_found", 404, time.time())
        return web.Response(
            status=404,
            body=b"404 page not found",
            headers={
                "Content-Type": "text/plain; charset=utf-8",
                "X-Tt-Logid": self.log_id(),
            },
        )

    async def control_stats(self, request: web.Request) -> web.StreamResponse:
        """GET /_sim/stats: the Stats snapshot as JSON."""
        return self.json_response((200, self.stats.as_dict()))

    async def control_reset_stats(self, request: web.Request) -> web.StreamResponse:
        """POST /_sim/reset_stats."""
        self.stats.reset()
        return self.json_response((200, {"ok": True}))

    async def control_expire_tokens(self, request: web.Request) -> web.StreamResponse:
        """POST /_sim/expire_tokens (``?users=1`` expires the user tokens too)."""
        self.tokens.expire_all(include_user_tokens=request.query.get("users") in ("1", "true"))
        return self.json_response((200, {"ok": True}))

    async def control_faults(self, request: web.Request) -> web.StreamResponse:
        """GET /_sim/faults reads the settings; POST merges a JSON object of changes."""
        if request.method == "POST":
            try:
                changes = json.loads(await request.read() or b"{}")
                if not isinstance(changes, dict):
                    raise TypeError("expected a JSON object")
                self.faults.update(changes)
            except (ValueError, TypeError) as exc:
                return self.json_response((400, {"ok": False, "error": str(exc)}))
        return self.json_response((200, self.faults.to_dict()))


def _spoil_expire(answer: dict[str, Any], mode: str) -> None:
    """Replace a token answer's ``expire`` as ``Faults.token_expire`` says ("real" keeps it)."""
    if mode == "missing":
        del answer["expire"]
    elif mode != "real":
        answer["expire"] = {"zero": 0, "negative": -60, "null": None, "string": "soon", "tiny": 0.001}[mode]
