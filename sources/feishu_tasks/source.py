"""The source function, ``feishu_tasks``: its parameters, checked, and the resources it returns.

Imported lazily by the package (``feishu_tasks/__init__.py``): importing ``dlt`` and ``pyarrow``
takes ~0.7 s, which the CLI's ``--help`` and any light module (``errors``, ``settings``) should
not pay. The config section stays ``feishu_tasks`` (dlt would otherwise name it after this module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import ParamSpec, TypeVar

import dlt
from dlt.sources import DltResource

from .arguments import check_arguments, check_journal
from .client import ClientSettings
from .control import current_run_control
from .credentials import FeishuCredentials
from .endpoints import parse_endpoint_limits
from .errors import ConfigError
from .resources import FollowerFetch, follower_resources, propagate_common_columns
from .retry import RetryPolicy
from .scheduler import FetchPlan
from .settings import (
    DEFAULT_BACKOFF_BASE_SECONDS,
    DEFAULT_CONCURRENCY,
    DEFAULT_DISCOVER_LOOKBACK_SECONDS,
    DEFAULT_FOLLOWERS_API,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_LISTING_PAGES,
    DEFAULT_MAX_LISTING_SECONDS,
    DEFAULT_MAX_PAGES_PER_TASK,
    DEFAULT_MAX_RATE_LIMITED_SECONDS,
    DEFAULT_MAX_RPM,
    DEFAULT_MAX_RPS,
    DEFAULT_MAX_SECONDS_PER_TASK,
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_USER_ID_TYPE,
    FEISHU_BASE_URL,
    FOLLOWERS_APIS,
    USER_ID_TYPES,
)
from .store_app import check_app_type, default_ticket_journal
from .tables import table_list

P = ParamSpec("P")
R = TypeVar("R")


def _with_table_list(function: Callable[P, R]) -> Callable[P, R]:
    """Fill the docstring's table list from the registry (dlt reads the docstring when it wraps)."""
    function.__doc__ = (function.__doc__ or "").replace(
        "{tables}", table_list().replace("\n", "\n" + " " * 8)
    )
    return function


@dlt.source(name="feishu_tasks", section="feishu_tasks")
@_with_table_list
def feishu_tasks(
    task_ids: Sequence[str] | None = None,
    tasklists: Sequence[str] | None = None,
    all_tasklists: bool = False,
    tasklist_completed: bool | None = None,
    discover: bool = False,
    discover_lookback_seconds: int = DEFAULT_DISCOVER_LOOKBACK_SECONDS,
    full_refresh: bool = False,
    stale_after_seconds: float | None = None,
    max_requests: int | None = None,
    max_rate_limited_seconds: float = DEFAULT_MAX_RATE_LIMITED_SECONDS,
    base_url: str = FEISHU_BASE_URL,
    user_id_type: str = DEFAULT_USER_ID_TYPE,
    followers_api: str = DEFAULT_FOLLOWERS_API,
    credentials: FeishuCredentials = dlt.secrets.value,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_rps: float = DEFAULT_MAX_RPS,
    max_rpm: float = DEFAULT_MAX_RPM,
    endpoint_limits: Mapping[str, Sequence[float | None]] | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_pages_per_task: int = DEFAULT_MAX_PAGES_PER_TASK,
    max_seconds_per_task: float = DEFAULT_MAX_SECONDS_PER_TASK,
    max_listing_pages: int = DEFAULT_MAX_LISTING_PAGES,
    max_listing_seconds: float = DEFAULT_MAX_LISTING_SECONDS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS,
    journal: str | None = None,
    tenant_key: str | None = None,
    ticket_journal: str | None = None,
) -> list[DltResource]:
    """Followers of the given tasks (and, with ``discover``, of every task the app can see).

    Every argument can also come from dlt config: ``[sources.feishu_tasks]`` in
    ``.dlt/config.toml`` / ``.dlt/secrets.toml``, or env vars such as
    ``SOURCES__FEISHU_TASKS__DISCOVER=true``.

    Args:
        task_ids: Task ids (UUIDs). Malformed ids are recorded as ``invalid_task`` in
            ``task_fetch_status`` without a request; duplicates are fetched once.
        tasklists: Task list guids (task v2): every task of these lists is fetched, and the
            lists and their tasks are loaded (``tasklists``, ``tasklist_tasks``,
            ``tasklist_fetch_status``). The way to read a team's tasks with an app: add the app
            to the lists as a member (viewer is enough).
        all_tasklists: Read every task list the credentials are a member of.
        tasklist_completed: Only the completed (true) or open (false) tasks of the lists.
        discover: Also list the tasks the credentials can see and load them (``tasks``
            table) and their followers. Incremental: the newest ``update_time`` seen is kept
            in dlt state, and the next listing starts ``discover_lookback_seconds`` before it
            (the list endpoint filters on create time only).
        discover_lookback_seconds: How far before the newest seen update a new listing starts.
        full_refresh: List every task again, ignoring the discover cursor.
        stale_after_seconds: Also fetch again every task already loaded (``task_fetch_status``
            at the destination) that was not seen whole for this long, oldest first: a
            listing finds new tasks, this keeps the old ones current (a follower change may
            not change a task's ``update_time``). Off by default.
        max_requests: Cap on this run's API requests (a free plan has a monthly quota). Tasks
            start in order while they fit; the rest waits for a later run.
        max_rate_limited_seconds: How long an endpoint may answer nothing but rate limits (429)
            before the run stops asking: what was fetched is loaded, the rest waits for a later
            run (the CLI then exits 1 with one line). Any other answer starts the count again,
            so a healthy run that meets 429s now and then never reaches it. 5 minutes.
        base_url: The API host: ``https://open.feishu.cn``, or ``https://open.larksuite.com``
            for Lark.
        user_id_type: Which id the follower ids are: ``open_id``, ``union_id`` or ``user_id``
            (``user_id`` needs the scope ``contact:user.employee_id:readonly``).
        followers_api: ``v1`` (the follower list, 50 a page), ``v2`` (get task: one request a
            task, user and app followers, ``member_type``), or ``auto`` (v1, and one v2 try
            for a task from a list that v1 calls invalid).
        credentials: A self-built app's ``app_id`` and ``app_secret`` (the connector fetches and
            refreshes the tenant token), or a ``user_access_token``. From
            ``[sources.feishu_tasks.credentials]`` in secrets.toml or env vars like
            ``SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET``.
        concurrency: Requests in flight at once (pacing decides the rate; this only has to
            cover the latency: 50 requests/s at 0.2 s each need 10).
        max_rps: Requests per second ceiling (Feishu's task quota is 50; 0 switches it off).
        max_rpm: Requests per minute ceiling (Feishu's task quota is 1,000; 0 switches it off).
            Both apply to each endpoint on its own, as Feishu counts them, and an endpoint
            with a lower documented quota (get task v2: 10/s) is paced at that.
        endpoint_limits: Per-endpoint ``[per second, per minute]`` (null: no limit) overriding
            the above, e.g. ``{"get_task_v2": [20, 1000]}``; endpoints: ``followers_v1``,
            ``list_tasks_v1``, ``tasklists_v2``, ``tasklist_tasks_v2``, ``get_task_v2``.
        timeout_seconds: Time allowed for one whole request (connect, send, and the whole
            answer, however slowly it arrives); past it the request is retried.
        max_pages_per_task: Pages one task may take (50 followers each) before it is recorded
            as ``failed``: a server that never stops paging cannot hold the run.
        max_seconds_per_task: Time one task may take, retries and pacing included, likewise.
        max_listing_pages: Pages the task listing (``discover``) may take.
        max_listing_seconds: Time the task listing may take.
        max_attempts: Tries per request on transient failures (5xx, timeouts) before the task
            is recorded as ``failed``.
        backoff_base_seconds: First backoff delay; it doubles per failed attempt, with jitter.
        journal: A change journal (the file ``feishu-followers listen`` writes, from Feishu's
            task events): also read every task it marks since the position this dataset last
            loaded, each through the API its id belongs to, dated by its event. The position is
            kept in dlt state and moves with the load.
        tenant_key: The tenant a store app (``app_type = "store"`` in the credentials) reads; a
            plain token as Feishu's ``app_open`` event gives it. Every row carries it.
        ticket_journal: Where ``feishu-followers listen`` records the store app's ``app_ticket``
            (default: the journal of the ``feishu_followers`` pipeline in dlt's pipelines folder).

    Returns:
        One resource per table, over one hidden ``fetch_followers`` resource that does the
        requests (so a selection with ``with_resources`` still fetches once):

        {tables}
    """
    if user_id_type not in USER_ID_TYPES:
        raise ConfigError(f"user_id_type must be one of {', '.join(USER_ID_TYPES)}, not {user_id_type!r}")
    if followers_api not in FOLLOWERS_APIS:
        raise ConfigError(f"followers_api must be one of {', '.join(FOLLOWERS_APIS)}, not {followers_api!r}")
    check_arguments(
        concurrency=concurrency,
        max_rps=max_rps,
        max_rpm=max_rpm,
        timeout_seconds=timeout_seconds,
        max_pages_per_task=max_pages_per_task,
        max_seconds_per_task=max_seconds_per_task,
        max_listing_pages=max_listing_pages,
        max_listing_seconds=max_listing_seconds,
        max_attempts=max_attempts,
        backoff_base_seconds=backoff_base_seconds,
        discover_lookback_seconds=discover_lookback_seconds,
        stale_after_seconds=stale_after_seconds,
        max_requests=max_requests,
        max_rate_limited_seconds=max_rate_limited_seconds,
    )
    check_journal(journal)
    check_journal(ticket_journal, "ticket_journal")
    app_type = check_app_type(getattr(credentials, "app_type", None), tenant_key)
    control = current_run_control()
    settings = ClientSettings(
        base_url=base_url.rstrip("/"),
        app_id=getattr(credentials, "app_id", None),
        app_secret=getattr(credentials, "app_secret", None),
        user_access_token=getattr(credentials, "user_access_token", None),
        app_type=app_type,
        tenant_key=tenant_key,
        ticket_journal=(ticket_journal or str(default_ticket_journal())) if app_type == "store" else None,
        request_slots=control.inputs.request_slots,
        concurrency=int(concurrency),
        max_rps=max_rps or None,
        max_rpm=max_rpm or None,
        endpoint_limits=parse_endpoint_limits(endpoint_limits),
        timeout_seconds=timeout_seconds,
        max_pages_per_task=max_pages_per_task,
        max_seconds_per_task=max_seconds_per_task,
        max_listing_pages=max_listing_pages,
        max_listing_seconds=max_listing_seconds,
        max_rate_limited_seconds=max_rate_limited_seconds,
        retry=RetryPolicy(max_attempts=int(max_attempts), backoff_base_seconds=backoff_base_seconds),
    )
    plan = FetchPlan(
        task_ids or (),  # iterated once, by the scheduler: not copied
        user_id_type,
        tasklist_guids=list(tasklists or ()),
        all_tasklists=all_tasklists,
        tasklist_completed=tasklist_completed,
        discover=discover,
        followers_api=followers_api,
        max_requests=max_requests,
    )
    if control.inputs.batch_rows:
        plan.batch_rows = max(1, control.inputs.batch_rows)
    if part := control.inputs.rows_per_part:  # a part ends between batches: keep batches smaller
        plan.batch_rows = max(1, min(plan.batch_rows, part))
    stale_after = timedelta(seconds=stale_after_seconds) if stale_after_seconds is not None else None
    fetch = FollowerFetch(
        plan, settings, control, discover_lookback_seconds, full_refresh, stale_after, journal
    )
    fetch.common_values = {"tenant_key": tenant_key or ""}
    propagate_common_columns(dlt.current.source_schema())
    return follower_resources(fetch)
