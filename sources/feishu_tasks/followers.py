"""All followers of one task, and the outcome of trying to get them.

Two ways to read them: task v1's follower list (paged, 50 a page: the seed endpoint) and task
v2's get task (one request whatever the count: the members whose role is follower, users and
apps). Both end in the same ``TaskOutcome``, which says which API answered.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .client import FeishuClient
from .endpoints import FOLLOWERS, GET_TASK
from .errors import ProtocolError, TaskError, business_code
from .items import TaskOutcome
from .pages import parse_followers_page, parse_task_followers_v2
from .settings import (
    CODE_INVALID_TASK,
    CODE_NO_PERMISSION,
    CODE_V2_BAD_PARAM,
    CODE_V2_NO_PERMISSION,
    CODE_V2_NOT_FOUND,
    FOLLOWERS_PAGE_SIZE,
    STATUS_FAILED,
    STATUS_FORBIDDEN,
    STATUS_INVALID,
    STATUS_OK,
)


async def fetch_task_followers(client: FeishuClient, task_id: str, user_id_type: str) -> TaskOutcome:
    """Page through the task's followers; per-task errors become the outcome, fatal ones raise.

    Pages are checked before use (pages.py): a task is ``ok`` only when every page was
    well-formed and the last one said there is no more; anything else keeps its earlier rows.
    """
    started = datetime.now(UTC)
    params = {"page_size": FOLLOWERS_PAGE_SIZE, "user_id_type": user_id_type}
    outcome = TaskOutcome(task_id, STATUS_OK, started, api="v1")
    seen: set[str] = set()
    bounds = client.task_bounds
    ceiling = bounds.max_pages * FOLLOWERS_PAGE_SIZE  # a server may put more on a page than asked
    try:
        pages = client.paginate(FOLLOWERS.path(task_id), params, parse_followers_page, bounds, FOLLOWERS)
        async for page in pages:
            outcome.pages += 1
            outcome.log_id = page.log_id
            for follower in page.items:
                if follower.id not in seen:  # a follower listed twice is one follow
                    seen.add(follower.id)
                    outcome.followers.append(follower)
            if len(outcome.followers) > ceiling:
                raise ProtocolError(
                    f"more than {ceiling} followers ({bounds.max_pages} pages of {FOLLOWERS_PAGE_SIZE}; "
                    f"see {bounds.setting})",
                    page.log_id,
                )
    except TaskError as exc:
        return _failed(outcome, _status_of(exc), exc.code, str(exc), exc.log_id)
    return outcome


async def fetch_task_followers_v2(client: FeishuClient, task_id: str, user_id_type: str) -> TaskOutcome:
    """The task's followers from v2 get task: one request, users and apps (``member_type``)."""
    outcome = TaskOutcome(task_id, STATUS_OK, datetime.now(UTC), api="v2")
    params = {"user_id_type": user_id_type}
    try:
        page = await client.get(GET_TASK.path(task_id), params, parse_task_followers_v2, GET_TASK)
    except TaskError as exc:
        return _failed(outcome, _status_of(exc), exc.code, str(exc), exc.log_id)
    outcome.pages, outcome.log_id = 1, page.log_id
    seen: set[str] = set()
    for follower in page.items:
        if follower.id not in seen:  # a member listed twice is one follow
            seen.add(follower.id)
            outcome.followers.append(follower)
    return outcome


# The business codes that say what is wrong with the task rather than with the request.
STATUS_BY_CODE = {
    CODE_INVALID_TASK: STATUS_INVALID,  # v1: no such task (or a v2-only one)
    CODE_NO_PERMISSION: STATUS_FORBIDDEN,  # v1
    CODE_V2_NOT_FOUND: STATUS_INVALID,  # v2: does not exist or was deleted
    CODE_V2_BAD_PARAM: STATUS_INVALID,  # v2: e.g. a guid it cannot parse
    CODE_V2_NO_PERMISSION: STATUS_FORBIDDEN,  # v2 (in v1 this code is a fatal token error)
}


def _status_of(exc: TaskError) -> str:
    """invalid_task and no_permission come from their business codes; anything else is failed."""
    return STATUS_BY_CODE.get(business_code(exc) or 0, STATUS_FAILED)


def _failed(outcome: TaskOutcome, status: str, code: int | None, msg: str, log_id: str | None) -> TaskOutcome:
    outcome.status = status
    outcome.followers = []
    outcome.error_code = code
    outcome.error_msg = msg
    outcome.log_id = log_id or outcome.log_id
    return outcome
