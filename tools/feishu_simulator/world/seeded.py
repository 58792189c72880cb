"""What a seed makes: the records and picks of a generated world, and the shares they follow.

Pure functions of their arguments and of the ``random.Random`` they are handed, so that one
seed gives the same world on any day and machine (``tests/simulator/test_determinism.py``
pins it).  Each kind of value is drawn from its own stream (named ``f"{seed}:..."``), so
adding tasks or lists never shifts what another stream draws: ``generate(200, s)`` is a
prefix of ``generate(1000, s)``.  The parts call these; they own the streams used at runtime.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Container, Sequence
from typing import Any

from .people import DEFAULT_TOKEN_USER
from .records import Tasklist, TaskRecord

# Fixed so that one seed gives the same world on any day (2026-01-01T00:00:00Z).
DEFAULT_ANCHOR = 1_767_225_600
YEAR_SECONDS = 365 * 86_400
DAY_MS = 86_400_000
ID_LIST_SHARE = 0.05  # share of followers whose list entry carries an id_list
#: Share of generated tasks with one or two app followers (which only v2 shows).
APP_FOLLOWER_SHARE = 0.05
#: Share of tasks in the first ("backlog") list, so that one list pages past 100 tasks.
BACKLOG_SHARE = 0.6
#: How many further lists a task joins, and how likely each number is.
EXTRA_LIST_COUNTS = (0, 1, 2, 3)
EXTRA_LIST_WEIGHTS = (0.45, 0.40, 0.12, 0.03)
ARCHIVED_SHARE = 0.12
NOT_A_MEMBER_SHARE = 0.12  # lists the app is not a member of
FORBIDDEN_SHARE = 0.06  # lists the app is a member of but may not read
TOKEN_USER_SHARE = 0.4  # lists the default token user belongs to
APP_POOL_SIZE = 4

_VERBS = ("Review", "Draft", "Ship", "Fix", "Plan", "Test", "Migrate", "Document", "Audit", "Sync")
_OBJECTS = (
    "quarterly report",
    "onboarding guide",
    "billing service",
    "release notes",
    "data model",
    "vendor contract",
    "dashboard",
    "API gateway",
    "hiring plan",
    "customer feedback",
)
PLATFORMS = (
    ('{"zh_cn": "IT 工作台", "en_us": "IT Workspace"}', "https://support.example.com/tickets/"),
    ('{"zh_cn": "项目管理", "en_us": "Project Hub"}', "https://projects.example.com/items/"),
    ('{"zh_cn": "客户服务", "en_us": "Service Desk"}', "https://desk.example.com/cases/"),
)
_TIMEZONES = ("Asia/Shanghai", "Asia/Singapore", "Europe/London", "America/New_York")
_TEAMS = ("Platform", "Growth", "Finance", "Design", "Support", "Data", "Security", "Sales")
_KINDS = ("backlog", "sprint", "roadmap", "launch plan", "OKRs", "bugs", "onboarding", "ops")
_APP_NAMES = ("Ticket Bot", "CI Reporter", "Survey Helper", "Approval Flow", "Calendar Sync")


def uuid4(rng: random.Random) -> str:
    """A lowercase UUID4-form string drawn from ``rng`` (task ids)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def guid(rng: random.Random) -> str:
    """A lowercase 8-4-4-4-12 hex guid (task list guids are not UUID4s upstream either)."""
    return str(uuid.UUID(int=rng.getrandbits(128)))


def follower_count(rng: random.Random, index: int) -> int:
    """A realistic follower count; tasks 1-3 are pinned so even tiny worlds page."""
    r = rng.random()
    if r < 0.10:
        n = 0
    elif r < 0.85:
        n = min(10, 1 + int(rng.expovariate(0.45)))
    elif r < 0.95:
        n = rng.randint(11, 50)
    else:
        n = rng.randint(51, 180)
    pinned = {1: 0, 2: 101 + n % 80, 3: 51 + n % 50}
    return pinned.get(index, n)


def _due(rng: random.Random, create: int) -> dict[str, Any] | None:
    """A due date for 70 % of the tasks, within 60 days of creation."""
    if rng.random() >= 0.7:
        return None
    all_day = rng.random() < 0.3
    due_time = create + rng.randint(1, 60) * 86_400
    return {
        "time": str(due_time - due_time % 86_400 if all_day else due_time),
        "timezone": rng.choice(_TIMEZONES),
        "is_all_day": all_day,
    }


def generated_task(
    task_id: str, index: int, *, seed: int, anchor: int, n_users: int, followers_per_task: int | None
) -> TaskRecord:
    """Task number ``index`` of a generated world, drawn from its own generator.

    ``followers_per_task`` gives it exactly that many followers instead of the realistic mix.
    """
    rng = random.Random(f"{seed}:task:{index}")
    create = anchor - rng.randint(3_600, YEAR_SECONDS)
    update = min(anchor, create + int(rng.expovariate(1 / (5 * 86_400))))
    complete = rng.randint(create, update) if rng.random() < 0.3 else 0
    count = follower_count(rng, index)
    if followers_per_task is not None:
        count = followers_per_task
    followers = rng.sample(range(n_users), min(count, n_users))
    id_lists = {
        u: rng.sample(range(n_users), min(rng.randint(1, 3), n_users))
        for u in followers
        if rng.random() < ID_LIST_SHARE
    }
    due = _due(rng, create)
    platform, url = PLATFORMS[rng.randrange(len(PLATFORMS))]
    verb, obj = rng.choice(_VERBS), rng.choice(_OBJECTS)
    n_collab = rng.choice((0, 1, 1, 1, 2, 3))
    return TaskRecord(
        id=task_id,
        summary=f"{verb} {obj} #{index}",
        description=f"{verb} the {obj}; generated task {index} (seed {seed}).",
        creator=rng.randrange(n_users),
        create_time=create,
        update_time=update,
        complete_time=complete,
        due=due,
        origin={
            "platform_i18n_name": platform,
            "href": {"url": f"{url}{index}", "title": f"{obj.title()} {index}"},
        },
        extra=f"sim:{index}" if rng.random() < 0.5 else "",
        custom="",
        source=rng.choice((1, 2, 3, 6)),
        collaborators=rng.sample(range(n_users), min(n_collab, n_users)),
        followers=followers,
        follower_set=set(followers),
        id_lists=id_lists,
    )


def added_task(task_id: str, n: int, created: int, followers: list[int], creator: int) -> TaskRecord:
    """The ``n``-th task added at runtime: open, no due date, the given people."""
    return TaskRecord(
        id=task_id,
        summary=f"Added task {n}",
        description=f"Task added at runtime ({n}).",
        creator=creator,
        create_time=created,
        update_time=created,
        complete_time=0,
        due=None,
        origin={"platform_i18n_name": PLATFORMS[0][0], "href": {"url": "", "title": ""}},
        extra="",
        custom="",
        source=1,
        collaborators=[],
        followers=followers,
        follower_set=set(followers),
        id_lists={},
    )


def forbidden_indexes(seed: int, tasks: int, count: int) -> list[int]:
    """Which of ``tasks`` generated tasks the app may not read (never the pinned tasks 2 and 3)."""
    candidates = [i for i in range(tasks) if i not in (2, 3)]
    if len(candidates) < count:
        candidates = list(range(tasks))
    return random.Random(f"{seed}:forbidden").sample(candidates, min(count, len(candidates)))


def invalid_ids(seed: int, count: int, known: Container[str]) -> list[str]:
    """Ids answered with 1470602: alternately unknown UUIDs and malformed strings."""
    rng = random.Random(f"{seed}:invalid")
    out: list[str] = []
    for k in range(count):
        well_formed = uuid4(rng)
        if k % 2 == 0:
            while well_formed in known:
                well_formed = uuid4(rng)
            out.append(well_formed)
        else:
            forms = (f"not-a-task-{k}", well_formed.replace("-", ""), well_formed.upper(), f"{well_formed}x")
            out.append(forms[(k // 2) % len(forms)])
    return out


def app_names(seed: int) -> dict[str, str]:
    """Other apps that follow some tasks: app id -> display name."""
    rng = random.Random(f"{seed}:apps")
    return {f"cli_{rng.getrandbits(64):016x}": name for name in _APP_NAMES[:APP_POOL_SIZE]}


def tasklist_count(tasklists: int | None, tasks: int) -> int:
    """``tasklists``, or by default a few dozen for a couple of hundred tasks (tasks // 6, within 4..48)."""
    return max(4, min(48, tasks // 6)) if tasklists is None else tasklists


def _list_people(index: int, rng: random.Random, n_users: int) -> tuple[int, int, dict[int, str]]:
    """(owner, creator, members) of generated list ``index``; lists 2 and 4 pin the token user."""
    owner = rng.randrange(n_users)
    creator = owner if rng.random() < 0.8 else rng.randrange(n_users)
    people = rng.sample(range(n_users), min(rng.randint(1, 8), n_users))
    members = {u: rng.choice(("editor", "viewer")) for u in people if u != owner}
    if rng.random() < TOKEN_USER_SHARE or index == 2:
        members.setdefault(DEFAULT_TOKEN_USER, "viewer")
    if index == 4:
        members.pop(DEFAULT_TOKEN_USER, None)
        if owner == DEFAULT_TOKEN_USER:
            owner = creator = (DEFAULT_TOKEN_USER + 1) % n_users
    members.pop(owner, None)
    return owner, creator, members


def generated_tasklist(
    index: int, rng: random.Random, *, n_users: int, anchor: int, fresh_guid: Callable[[random.Random], str]
) -> Tasklist:
    """List number ``index`` of a generated world, without tasks yet.

    Lists 0-4 are pinned so that every world has each kind: 0 the big backlog, 1 archived,
    2 without the app (but with the default token user), 3 forbidden, 4 without the default
    token user.
    """
    owner, creator, members = _list_people(index, rng, n_users)
    chats = [(f"oc_{rng.getrandbits(128):032x}", "viewer")] if rng.random() < 0.2 else []
    app_role: str | None = rng.choice(("viewer", "viewer", "editor"))
    if index == 2 or (index > 4 and rng.random() < NOT_A_MEMBER_SHARE):
        app_role = None
    created = (anchor - rng.randint(30 * 86_400, 365 * 86_400)) * 1000 + rng.randrange(1000)
    updated = min(anchor * 1000, created + rng.randint(0, 60) * DAY_MS + rng.randrange(DAY_MS))
    archived = index == 1 or (index > 4 and rng.random() < ARCHIVED_SHARE)
    forbidden = index == 3 or (index > 4 and app_role is not None and rng.random() < FORBIDDEN_SHARE)
    return Tasklist(
        guid=fresh_guid(rng),
        name=f"{rng.choice(_TEAMS)} {rng.choice(_KINDS)} #{index}",
        creator=creator,
        owner=owner,
        members=members,
        chats=chats,
        app_role=app_role,
        created_ms=created,
        updated_ms=updated,
        archive_ms=rng.randint(updated, anchor * 1000) if archived else 0,
        forbidden=forbidden,
        sections=[guid(rng) for _ in range(rng.randint(1, 3))],
    )


def lists_to_join(rng: random.Random, guids: Sequence[str]) -> list[str]:
    """The generated lists one task joins: the backlog for most, then up to three others."""
    chosen: list[str] = []
    if guids and rng.random() < BACKLOG_SHARE:
        chosen.append(guids[0])
    extra = min(rng.choices(EXTRA_LIST_COUNTS, EXTRA_LIST_WEIGHTS)[0], max(0, len(guids) - 1))
    if extra:
        chosen += [guids[i] for i in rng.sample(range(1, len(guids)), extra)]
    return chosen
