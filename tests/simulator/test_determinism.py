"""One seed, one world: digests of what ``World.generate`` and the seeded mutations make, pinned.

The digests were taken from the simulator before it was split into parts (the World of
``TasklistsMixin``): a refactor that changes a single id, follower, list or rendered field of a
generated world, or the order of a seeded random stream, fails here, naming the aspect that
drifted.  Demo databases, benchmark worlds and the end-to-end tests all rely on that.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from feishu_simulator import ID_TYPES, Simulator, World

#: sha256 (first 16 hex digits) of each aspect, as the pre-refactor simulator made them.
PINNED = {
    "users": "25565739af6eba1b",
    "task_ids": "b0b7953965e1502d",
    "followers": "dd0b493fc8c9aad1",
    "v1_tasks": "948cff21c0ac8068",
    "v2_tasks": "35abbaef202fc6ec",
    "tasklists": "67453e9a6bf45a93",
    "memberships": "3dec9464431a7f6f",
    "mutations": "88b692c228d5b46c",
    "uniform": "6c622031e70adaf0",
}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def generated() -> World:
    return World.generate(tasks=200, seed=7, users=500, forbidden=3, invalid=4, v2_only=0.05)


def aspects_of(world: World) -> dict[str, Any]:
    """Every generated value a client or a test can observe, grouped by aspect."""
    ids = world.task_ids()
    guids = world.tasklist_guids()
    apps = sorted(world.app_names.items())
    return {
        "users": [[u.open_id, u.union_id, u.user_id] for u in world.users] + [apps],
        "task_ids": [ids, world.invalid_ids, sorted(world.forbidden), sorted(world.v2_only)],
        "followers": [
            [world.followers(t, kind), sorted(world.follower_id_lists(t, kind).items())]
            for t in ids
            for kind in ID_TYPES
        ],
        "v1_tasks": [world.task(t, kind) for t in ids for kind in ID_TYPES],
        "v2_tasks": [
            [world.v2_task(t), world.v2_task(t, "user_id", caller=0), world.v2_followers(t)]
            + [world.display_id(t), world.created_ms(t), world.v2_assignees(t, "union_id")]
            for t in ids
        ],
        "tasklists": [[world.tasklist(g, kind) for kind in ID_TYPES] for g in guids],
        "memberships": [
            guids,
            world.visible_tasklists(),
            world.visible_tasklists(0),
            [[world.tasklist_tasks(g, completed) for completed in (None, True, False)] for g in guids],
            [world.tasklists_of(t) for t in ids],
        ],
    }


def mutated() -> list[Any]:
    """What the seeded mutation streams pick: new task ids, followers, lists, app followers."""
    world = World.generate(tasks=30, seed=7)
    new_tasks = [world.add_task(followers=3, create_time=1_800_000_000 + k) for k in range(3)]
    picked = [world.add_follower(t) for t in world.task_ids()[:5]]
    lists = [world.add_tasklist(), world.add_tasklist()]
    lists.append(world.add_tasklist("named", app_role=None, members=[1]))
    world.add_task_to_tasklist(lists[0], new_tasks[0])
    apps = [world.add_app_follower(t) for t in world.task_ids()[:4]]
    return [
        new_tasks,
        picked,
        lists,
        apps,
        [world.task(t) for t in new_tasks],
        [world.v2_task(t) for t in new_tasks],
        [world.tasklist(g) for g in lists],
    ]


def uniform() -> list[Any]:
    world = World.generate(tasks=40, seed=3, users=60, followers_per_task=7, tasklists=5)
    return [[t, world.followers(t, "user_id"), world.tasklists_of(t)] for t in world.task_ids()]


@pytest.fixture(scope="module")
def digests() -> dict[str, str]:
    values = aspects_of(generated())
    values["mutations"] = mutated()
    values["uniform"] = uniform()
    return {name: digest(value) for name, value in values.items()}


@pytest.mark.parametrize("aspect", sorted(PINNED))
def test_generated_world_is_what_it_always_was(digests: dict[str, str], aspect: str) -> None:
    assert digests[aspect] == PINNED[aspect], f"{aspect} of a seeded world changed"


#: sha256 (first 16 hex digits) of the HTTP answers below, as the pre-refactor simulator gave them.
PINNED_ANSWERS = "9e13f096003fe4a1"


class Tour:
    """Requests to one simulator, recording each answer's status and body (without its log id)."""

    def __init__(self, client: httpx.Client, token: str) -> None:
        self.client, self.token = client, token
        self.answers: list[Any] = []

    def get(self, path: str, bearer: str = "", **params: Any) -> dict[str, Any]:
        """One request (the tenant token unless ``bearer``); its ``data``."""
        headers = {"Authorization": f"Bearer {bearer or self.token}"}
        r = self.client.get(path, headers=headers, params=params)
        body = r.json()
        body.pop("error", None)
        self.answers.append([path, sorted(params.items()), r.status_code, body])
        return dict(body.get("data") or {})

    def pages(self, path: str, bearer: str = "", **params: Any) -> None:
        """Every page, following page tokens."""
        page_token = ""
        for _ in range(100):
            data = self.get(path, bearer, **params, page_token=page_token)
            if not data.get("has_more"):
                return
            page_token = data["page_token"]


def answers(world: World) -> list[Any]:
    """A tour of every endpoint, and of the errors each answers, over one world."""
    user_token, v1, v2 = "u-pinned", "/open-apis/task/v1/tasks", "/open-apis/task/v2"
    with (
        Simulator(world, app_id="cli_pin", app_secret="s", user_tokens={user_token}) as sim,
        httpx.Client(base_url=sim.base_url, timeout=5) as client,
    ):
        credentials = {"app_id": "cli_pin", "app_secret": "s"}
        token = client.post("/open-apis/auth/v3/tenant_access_token/internal", json=credentials)
        tour = Tour(client, token.json()["tenant_access_token"])
        ids = world.task_ids()
        tour.pages(v1, page_size=37)
        tour.pages(v1, task_completed="true", user_id_type="union_id")
        odd = [*sorted(world.forbidden), *sorted(world.v2_only)[:2], *world.invalid_ids]
        for task_id in ids[:6] + odd:
            tour.pages(f"{v1}/{task_id}/followers", page_size=20, user_id_type="user_id")
            tour.get(f"{v1}/{task_id}")
            tour.get(f"{v2}/tasks/{task_id}", user_id_type="union_id")
        tour.pages(f"{v2}/tasklists", page_size=7)
        tour.pages(f"{v2}/tasklists", user_token)
        for guid in world.tasklist_guids():
            tour.pages(f"{v2}/tasklists/{guid}/tasks", page_size=40, completed="false")
            tour.get(f"{v2}/tasklists/{guid}/tasks", user_token)
        tour.get(f"{v2}/tasks/{ids[9]}", user_token)
        tour.get(f"{v1}/{ids[0]}/followers", page_size=51)
        tour.get(f"{v2}/tasklists", page_size=0)
    return tour.answers


def test_http_answers_are_what_they_always_were() -> None:
    assert digest(answers(generated())) == PINNED_ANSWERS
