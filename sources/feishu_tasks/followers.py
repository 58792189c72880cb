"""All followers of one task, and the outcome of trying to get them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from .client import FeishuClient
from .errors import ApiError, ProtocolError, TaskError
from .pages import Follower, parse_followers_page
from .pagination import iter_pages
from .settings import (
    CODE_INVALID_TASK,
    CODE_NO_PERMISSION,
    FOLLOWERS_PAGE_SIZE,
    FOLLOWERS_PATH_TEMPLATE,
    STATUS_FAILED,
    STATUS_FORBIDDEN,
    STATUS_INVALID,
    STATUS_OK,
)


@dataclass
class TaskOutcome:
    """What one task's fetch produced: its followers, or why there are none to load."""

    task_id: str
    status: str
    fetched_at: datetime
    followers: list[Follower] = field(default_factory=list)
    pages: int = 0
    error_code: int | None = None
    error_msg: str | None = None
    log_id: str | None = None


def followers_path(task_id: str) -> str:
    """The endpoint path; the id is percent-encoded even though it was validated."""
    return FOLLOWERS_PATH_TEMPLATE.format(task_id=quote(task_id, safe=""))


def invalid_outcome(task_id: str, reason: str) -> TaskOutcome:
    """A task id rejected before any request was sent."""
    return TaskOutcome(task_id, STATUS_INVALID, datetime.now(UTC), error_msg=reason)


async def fetch_task_followers(client: FeishuClient, task_id: str, user_id_type: str) -> TaskOutcome:
    """Page through the task's followers; per-task errors become the outcome, fatal ones raise.

    Pages are checked before use (pages.py): a task is ``ok`` only when every page was
    well-formed and the last one said there is no more; anything else keeps its earlier rows.
    """
    started = datetime.now(UTC)
    params = {"page_size": FOLLOWERS_PAGE_SIZE, "user_id_type": user_id_type}
    outcome = TaskOutcome(task_id, STATUS_OK, started)
    seen: set[str] = set()
    bounds = client.task_bounds
    ceiling = bounds.max_pages * FOLLOWERS_PAGE_SIZE  # a server may put more on a page than asked
    try:
        async for page in iter_pages(client, followers_path(task_id), params, parse_followers_page, bounds):
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


def _status_of(exc: TaskError) -> str:
    """invalid_task and no_permission come from their business codes; anything else is failed."""
    by_code = {CODE_INVALID_TASK: STATUS_INVALID, CODE_NO_PERMISSION: STATUS_FORBIDDEN}
    return by_code.get(exc.code or 0, STATUS_FAILED) if isinstance(exc, ApiError) else STATUS_FAILED


def _failed(outcome: TaskOutcome, status: str, code: int | None, msg: str, log_id: str | None) -> TaskOutcome:
    outcome.status = status
    outcome.followers = []
    outcome.error_code = code
    outcome.error_msg = msg
    outcome.log_id = log_id or outcome.log_id
    return outcome
