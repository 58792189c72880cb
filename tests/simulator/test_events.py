"""The simulator's events part: which events a change makes, Feishu's retry schedule, the
request URL's verification, a push not answered in time, and the store-app events, against a
small receiver of the test's own (real HTTP)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from feishu_simulator import Change, ChangeKind, Simulator, World
from feishu_simulator.events.outbox import ACKNOWLEDGED, GIVEN_UP, PENDING, Outbox
from feishu_simulator.events.settings import FEISHU_RETRY_SCHEDULE, EventSettings
from feishu_simulator.events.translate import task_events

from ..e2e.listen_harness import wait_for

GUID = "0d38e26e-190a-49e9-93a2-35067763ed1f"


def change(kind: ChangeKind) -> Change:
    return Change(kind, GUID, 1_767_225_600_000, 1)


@pytest.mark.parametrize(
    ("kind", "covered", "by_app", "expected"),
    [
        (
            ChangeKind.FOLLOWER_ADDED,
            True,
            True,
            [
                (
                    "task.task.update_user_access_v2",
                    {"task_guid": GUID, "event_types": ["task_followers_update"]},
                ),
                (
                    "task.task.update_tenant_v1",
                    {"task_id": GUID, "object_type": "task", "event_type": "update"},
                ),
                ("task.task.updated_v1", {"task_id": GUID, "obj_type": 3}),
            ],
        ),
        (
            ChangeKind.TASK_DELETED,
            True,
            False,
            [
                ("task.task.update_user_access_v2", {"task_guid": GUID, "event_types": ["task_deleted"]}),
                (
                    "task.task.update_tenant_v1",
                    {"task_id": GUID, "object_type": "task", "event_type": "delete"},
                ),
            ],
        ),
        (
            ChangeKind.TASK_CREATED,
            False,
            True,
            [
                (
                    "task.task.update_tenant_v1",
                    {"task_id": GUID, "object_type": "task", "event_type": "create"},
                )
            ],
        ),
        (ChangeKind.TASK_ACCESS_CHANGED, True, True, []),  # Feishu has no event for it
        (ChangeKind.TASKLIST_CREATED, True, True, []),
    ],
)
def test_which_events_a_change_makes(
    kind: ChangeKind, covered: bool, by_app: bool, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    events = task_events(change(kind), v2_covered=covered, app_created=by_app, tenant_events=True)
    assert [
        (e.event_type, {k: v for k, v in e.event.items() if k != "user_id_list"}) for e in events
    ] == expected


def test_feishus_retry_schedule_then_giving_up() -> None:
    outbox = Outbox(EventSettings(time_scale=1.0))
    outbox.add("e1", "t", {}, now=0.0)
    (delivery,) = outbox.take_due(0.0, 10)
    waits, now = [], 0.0
    for _ in range(len(FEISHU_RETRY_SCHEDULE) + 1):
        outbox.answered(delivery, "timeout", now)
        if delivery.state != PENDING:
            break
        waits.append(delivery.due - now)
        now = delivery.due
        assert outbox.take_due(now - 0.001, 10) == []
        assert outbox.take_due(now, 10) == [delivery]
    assert waits == list(FEISHU_RETRY_SCHEDULE) and delivery.state == GIVEN_UP
    assert delivery.attempts == 5 and outbox.next_due() is None


def test_a_duplicate_is_pushed_once_more_after_the_acknowledgement() -> None:
    outbox = Outbox(EventSettings(duplicate_fraction=1.0))
    outbox.add("e1", "t", {}, now=0.0)
    (delivery,) = outbox.take_due(0.0, 10)
    outbox.answered(delivery, "200", 1.0)
    assert delivery.state == ACKNOWLEDGED and delivery.replays == 1
    (again,) = outbox.take_due(2.0, 10)
    outbox.answered(again, "500", 2.0)  # a duplicate's answer changes nothing
    assert delivery.state == ACKNOWLEDGED and outbox.take_due(1e9, 10) == []


class Receiver:
    """A request URL of the test's own: answers as told, keeps what it got."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.status = 200
        self.delay = 0.0
        self.challenge_answer: str | None = None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        if payload.get("type") == "url_verification":
            return web.json_response({"challenge": self.challenge_answer or payload["challenge"]})
        await asyncio.sleep(self.delay)
        self.got.append(payload)
        return web.Response(status=self.status)

    def __enter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/feishu/events", self.handle)

        async def start() -> None:
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/feishu/events"

        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(World.generate(tasks=10, seed=3), app_id="cli_ev", app_secret="ev-secret") as s:
        s.events.settings.update({"time_scale": 0.001})
        yield s


def test_a_request_url_is_set_only_when_it_echoes_the_challenge(sim: Simulator, receiver: Receiver) -> None:
    receiver.challenge_answer = "something else"
    assert sim.events.set_request_url(receiver.url)["verified"] is False
    sim.world.add_follower(sim.world.task_ids()[0])
    assert sim.events.outbox.snapshot()["events"] == 0  # no delivery set up: no events
    receiver.challenge_answer = None
    assert sim.events.set_request_url(receiver.url)["verified"] is True
    sim.world.add_follower(sim.world.task_ids()[0])
    wait_for(lambda: len(receiver.got) == 1, "the event")
    assert receiver.got[0]["header"]["event_type"] == "task.task.update_tenant_v1"


def test_a_push_not_answered_in_time_is_pushed_again(sim: Simulator, receiver: Receiver) -> None:
    sim.events.set_request_url(receiver.url)
    sim.events.settings.update({"ack_timeout_seconds": 0.2})
    receiver.delay = 1.0
    sim.world.add_follower(sim.world.task_ids()[0])
    wait_for(lambda: any(d.attempts >= 1 for d in sim.events.outbox.deliveries()), "the first push")
    receiver.delay = 0.0
    wait_for(lambda: sim.events.acknowledged_ids(), "the acknowledgement")
    (delivery,) = sim.events.outbox.deliveries()
    assert delivery.answers[0] == "timeout" and delivery.answers[-1] == "200"


def test_store_app_events_app_ticket_resend_and_tenants(sim: Simulator, receiver: Receiver) -> None:
    sim.events.set_request_url(receiver.url)
    sim.events.settings.update({"app_ticket_resend_delay_seconds": 0.0})
    refused = httpx.post(
        sim.base_url + "/open-apis/auth/v3/app_ticket/resend", json={"app_id": "cli_ev", "app_secret": "no"}
    )
    assert refused.json()["code"] == 10003
    answer = httpx.post(
        sim.base_url + "/open-apis/auth/v3/app_ticket/resend",
        json={"app_id": "cli_ev", "app_secret": "ev-secret"},
    )
    assert answer.json() == {"code": 0, "msg": "ok"}
    httpx.post(sim.base_url + "/_sim/events/tenant", json={"tenant_key": "t-2", "status": "installed"})
    httpx.post(sim.base_url + "/_sim/events/tenant", json={"tenant_key": "t-2", "status": "stopped"})
    wait_for(lambda: len(receiver.got) == 3, "the three events")
    ticket = next(p for p in receiver.got if p.get("event", {}).get("type") == "app_ticket")
    assert ticket["event"]["app_ticket"] == sim.events.ticket and ticket["event"]["app_id"] == "cli_ev"
    tenants = [p for p in receiver.got if "header" in p]
    assert [(p["header"]["event_type"], p["header"]["tenant_key"]) for p in tenants] == [
        ("app_open", "t-2"),
        ("app_status_change", "t-2"),
    ]


def test_control_routes_show_settings_without_secrets(sim: Simulator) -> None:
    sim.events.settings.update({"encrypt_key": "ek-shown-nowhere", "verification_token": "vt-nowhere"})
    shown = httpx.get(sim.base_url + "/_sim/events/settings").text
    assert "ek-shown-nowhere" not in shown and "vt-nowhere" not in shown
    bad = httpx.post(sim.base_url + "/_sim/events/settings", json={"no_such": 1})
    assert bad.status_code == 400 and "no_such" in bad.text
    snapshot = httpx.get(sim.base_url + "/_sim/events").json()
    assert snapshot["events"] == 0 and snapshot["request_url"] is None
