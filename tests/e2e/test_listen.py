"""``feishu-followers listen`` over real HTTP: the simulator's pushes and hand-made bad requests.

The receiver runs as its own process (as in production); the simulator pushes what each change
of its world makes, sealed like Feishu when an Encrypt Key is set, with Feishu's retries. The
assertions are on the journal file that ``run --changed`` reads.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from feishu_simulator import Simulator, World
from feishu_simulator.events import envelopes
from feishu_simulator.events.sealing import encrypt, seal

from .listen_harness import (
    ENCRYPT_KEY,
    VERIFICATION_TOKEN,
    Listener,
    deliveries,
    journal_counters,
    journal_rows,
    listen_env,
    post,
    settled,
    wait_for,
)

APP_ID, APP_SECRET = "cli_listen", "listen-secret-5d1e"
USER_TOKEN = "u-listen-user-token"
GUID = "0d38e26e-190a-49e9-93a2-35067763ed1f"


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("listen")


@pytest.fixture(scope="module")
def listener(module_dir: Path) -> Iterator[Listener]:
    """One receiver for the bad-input tests (each reads what changed in the journal)."""
    process = Listener(module_dir / "journal.sqlite", module_dir, listen_env())
    process.ready()
    yield process
    process.stop()


def make_sim(world: World, encrypt_key: str | None = ENCRYPT_KEY) -> Simulator:
    sim = Simulator(world, app_id=APP_ID, app_secret=APP_SECRET, user_tokens={USER_TOKEN})
    sim.events.settings.update(
        {"verification_token": VERIFICATION_TOKEN, "encrypt_key": encrypt_key, "time_scale": 0.001}
    )
    return sim.start()


def sealed(payload: object, key: str = ENCRYPT_KEY) -> tuple[bytes, dict[str, str]]:
    return seal(payload, key)  # type: ignore[arg-type]


def event(
    event_type: str = "task.task.update_user_access_v2", event_id: str = "ev-x", **fields: object
) -> dict:
    origin = envelopes.Origin(APP_ID, "2ed263bf32cf1651", VERIFICATION_TOKEN)
    body = fields or {"task_guid": GUID, "event_types": ["task_followers_update"]}
    return envelopes.v2_envelope(origin, event_id, event_type, 1_767_225_600_000, body)


# ---------------------------------------------------------------------------------------- the pushes
@pytest.mark.parametrize("encrypt_key", [ENCRYPT_KEY, None], ids=["sealed", "plain"])
def test_every_change_the_simulator_makes_is_recorded_once(tmp_path: Path, encrypt_key: str | None) -> None:
    world = World.generate(tasks=30, seed=5)
    process = Listener(tmp_path / "j.sqlite", tmp_path, listen_env(encrypt_key=encrypt_key))
    url = process.ready()
    with make_sim(world, encrypt_key) as sim:
        verified = sim.events.set_request_url(url)
        assert verified["verified"] and verified["seconds"] <= 1.0, verified
        httpx.post(  # the app subscribes to v2's task events with its tenant token
            sim.base_url + "/open-apis/task/v2/task_v2/task_subscription?user_id_type=open_id",
            headers={"Authorization": "Bearer " + _tenant_token(sim)},
            json={},
        ).raise_for_status()
        in_app_lists = {t for g in world.find_tasklists(app_member=True) for t in world.tasklist_tasks(g)}
        covered_ids = [t for t in world.task_ids() if t in in_app_lists and world.followers(t)]
        outside = next(t for t in world.task_ids() if t not in in_app_lists)
        followed, unfollowed, deleted = covered_ids[:3]
        world.add_follower(followed)
        world.remove_follower(unfollowed, world.followers(unfollowed)[0])
        world.delete_task(deleted)
        world.add_follower(outside)
        created = world.add_task(followers=2)
        wait_for(lambda: settled(sim), "the simulator's deliveries")
        pushed = deliveries(sim)
    assert process.stop() == 0
    assert {d["state"] for d in pushed} == {"acknowledged"}
    rows = journal_rows(tmp_path / "j.sqlite")
    assert sorted(r[0] for r in rows) == sorted(d["event_id"] for d in pushed)  # each event once
    v2 = {(r[2], r[3], r[5]) for r in rows if r[1] == "v2"}
    assert v2 == {  # the tasks of the app's lists and the one it created; not the other one
        (followed, "task_followers_update", 0),
        (unfollowed, "task_followers_update", 0),
        (deleted, "task_deleted", 1),
        (created, "task_create", 0),
    }
    v1 = [(r[2], r[3]) for r in rows if r[1] == "v1"]
    assert sorted(v1) == sorted((t, "task_update") for t in (followed, unfollowed, deleted, outside, created))


def _tenant_token(sim: Simulator) -> str:
    answer = httpx.post(
        sim.base_url + "/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": APP_ID, "app_secret": APP_SECRET},
    )
    return str(answer.json()["tenant_access_token"])


def test_the_subscription_api_is_idempotent_per_identity() -> None:
    with make_sim(World.generate(tasks=5, seed=1)) as sim:
        url = sim.base_url + "/open-apis/task/v2/task_v2/task_subscription?user_id_type=open_id"
        sim.world.bind_user_token(USER_TOKEN, 3)
        app, user = (
            {"Authorization": "Bearer " + _tenant_token(sim)},
            {"Authorization": "Bearer " + USER_TOKEN},
        )
        answers = [httpx.post(url, headers=h, json={}).json() for h in (app, app, user, user)]
        assert [a["code"] for a in answers] == [0, 0, 0, 0]
        assert [a["data"]["subscribed"] for a in answers] == [True, False, True, False]
        assert sim.events.coverage.identities() == ["app", "user:3"]
        refused = httpx.post(url, headers={"Authorization": "Bearer t-nope"}, json={})
        assert refused.json()["code"] == 99991663


def test_replays_and_reordered_pushes_are_recorded_once(tmp_path: Path) -> None:
    world = World.generate(tasks=20, seed=6)
    process = Listener(tmp_path / "j.sqlite", tmp_path, listen_env())
    url = process.ready()
    with make_sim(world) as sim:
        sim.events.settings.update({"duplicate_fraction": 1.0, "reorder_window_ms": 50})
        sim.events.set_request_url(url)
        for task_id in world.task_ids()[:10]:
            world.add_follower(task_id)
        wait_for(lambda: settled(sim) and sim.events.outbox.snapshot()["duplicates"] == 10, "the duplicates")
        pushed = deliveries(sim)
    process.stop()
    assert all(d["attempts"] == 2 and d["answers"] == ["200", "200"] for d in pushed)
    rows = journal_rows(tmp_path / "j.sqlite")
    assert len(rows) == len(pushed) == 10 and len({r[0] for r in rows}) == 10


def test_an_unanswered_push_is_retried_on_feishus_schedule_until_recorded(tmp_path: Path) -> None:
    world = World.generate(tasks=10, seed=7)
    journal = tmp_path / "j.sqlite"
    with make_sim(world) as sim:
        first = Listener(journal, tmp_path, listen_env())
        sim.events.set_request_url(first.ready())
        first.stop()  # Feishu's pushes now find nobody
        world.add_follower(world.task_ids()[0])
        wait_for(lambda: any(d["attempts"] >= 2 for d in deliveries(sim)), "a retry")
        second = Listener(journal, tmp_path, listen_env(), ["--port", first_port(sim)])
        second.ready()
        wait_for(lambda: settled(sim), "the retried delivery")
        (pushed,) = deliveries(sim)
    second.stop()
    assert pushed["state"] == "acknowledged" and pushed["answers"][0] == "refused"
    assert [r[0] for r in journal_rows(journal)] == [pushed["event_id"]]


def first_port(sim: Simulator) -> str:
    assert sim.events.webhook.url is not None
    return sim.events.webhook.url.rsplit(":", 1)[1].split("/")[0]


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "request_parts",
    [
        pytest.param((sealed(event(event_id="w1"))[0], {}), id="no-signature-headers"),
        pytest.param((b'{"encrypt": "AAAA"}', {"X-Lark-Signature": "0" * 64}), id="wrong-signature"),
        pytest.param(sealed({**event(), "header": {**event()["header"], "token": "nope"}}), id="wrong-token"),
        pytest.param(sealed({**event(), "header": {**event()["header"], "token": None}}), id="missing-token"),
        pytest.param(sealed(event(), key="another key"), id="another-encrypt-key"),
    ],
)
def test_not_from_feishu_is_401_and_nothing_is_recorded(
    listener: Listener, request_parts: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = request_parts
    before = journal_rows(listener.journal)
    answer = post(listener.ready(), body, headers)
    assert answer.status_code == 401
    assert journal_rows(listener.journal) == before


def test_many_refusals_make_at_most_one_line_a_minute(listener: Listener) -> None:
    url = listener.ready()
    said = sum("refused (401)" in line for line in listener.lines)
    for n in range(200):
        assert (
            post(
                url, *sealed({**event(event_id=f"r{n}"), "header": {**event()["header"], "token": "x"}})
            ).status_code
            == 401
        )
    assert sum("refused (401)" in line for line in listener.lines) <= said + 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not JSON"),
        (b'{"encrypt": 5}', "no 'encrypt' string"),
        (b'{"encrypt": "not base64!"}', "does not decrypt"),
        (json.dumps({"encrypt": encrypt(b"{}", "other")}).encode(), "does not decrypt"),
        (json.dumps({"encrypt": encrypt(b"[not json", ENCRYPT_KEY)}).encode(), "not JSON"),
        (
            json.dumps(
                {
                    "encrypt": encrypt(
                        json.dumps(event(task_guid="t1", event_types=["x"])).encode(), ENCRYPT_KEY
                    )
                }
            ).encode(),
            "not a task id",
        ),
        (
            json.dumps(
                {"encrypt": encrypt(json.dumps({**event(), "event": None}).encode(), ENCRYPT_KEY)}
            ).encode(),
            "event is missing",
        ),
    ],
    ids=[
        "not-json",
        "encrypt-not-text",
        "not-base64",
        "another-key",
        "decrypted-not-json",
        "bad-guid",
        "no-event",
    ],
)
def test_from_feishu_but_unusable_is_400_and_nothing_is_recorded(
    listener: Listener, body: bytes, reason: str
) -> None:
    from feishu_simulator.events.sealing import signature

    headers = {"X-Lark-Request-Timestamp": "1", "X-Lark-Request-Nonce": "n"}
    headers["X-Lark-Signature"] = signature("1", "n", ENCRYPT_KEY, body)
    before = journal_rows(listener.journal)
    answer = post(listener.ready(), body, headers)
    assert answer.status_code == 400 and reason in answer.json()["msg"]
    assert journal_rows(listener.journal) == before


def test_a_body_over_one_mib_is_413_announced_or_not(listener: Listener) -> None:
    url = listener.ready()
    big = b"{" + b" " * (1024 * 1024) + b"}"
    assert post(url, big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    assert httpx.post(url, content=chunks(), timeout=30).status_code == 413  # chunked: no length


def test_unknown_types_are_200_and_counted_not_recorded(listener: Listener) -> None:
    before, counted = journal_rows(listener.journal), journal_counters(listener.journal)
    for n in range(3):
        assert (
            post(listener.ready(), *sealed(event("im.message.receive_v1", f"u{n}", text="hi"))).status_code
            == 200
        )
    assert journal_rows(listener.journal) == before
    after = journal_counters(listener.journal)
    assert (
        after.get("ignored:im.message.receive_v1", 0) == counted.get("ignored:im.message.receive_v1", 0) + 3
    )


def test_a_replayed_event_id_is_answered_200_and_recorded_once(listener: Listener) -> None:
    before = len(journal_rows(listener.journal))
    for _ in range(3):
        assert post(listener.ready(), *sealed(event(event_id="replayed-1"))).status_code == 200
    rows = journal_rows(listener.journal)
    assert len(rows) == before + 1 and rows[-1][0] == "replayed-1"


# ---------------------------------------------------------------------------------------- the process
def test_without_a_verification_token_listen_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    process = Listener(tmp_path / "j.sqlite", tmp_path, listen_env(token=None))
    assert process.exit_code() == 1
    assert len(process.lines) == 1 and "Traceback" not in process.stderr
    assert "no verification token" in process.lines[0]
    assert "SOURCES__FEISHU_TASKS__CREDENTIALS__VERIFICATION_TOKEN" in process.lines[0]
    assert not (tmp_path / "j.sqlite").exists()


def test_sigterm_ends_it_cleanly_and_secrets_appear_nowhere(tmp_path: Path) -> None:
    world = World.generate(tasks=10, seed=8)
    journal = tmp_path / "j.sqlite"
    env = listen_env(SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET=APP_SECRET)
    process = Listener(journal, tmp_path, env)
    with make_sim(world) as sim:
        sim.events.set_request_url(process.ready())
        world.add_follower(world.task_ids()[0])
        sim.events.push_app_ticket()
        wait_for(lambda: settled(sim), "the deliveries")
        post(
            process.ready(),
            *sealed({**event(), "header": {**event()["header"], "token": VERIFICATION_TOKEN + "x"}}),
        )
        tokens = sim.tokens.issued_tokens()
    assert process.stop(signal.SIGTERM) == 0
    assert process.lines[-1].startswith(
        "feishu-followers: listen: stopped by SIGTERM: recorded 2,"
    )  # the change, the ticket
    secrets = [VERIFICATION_TOKEN, ENCRYPT_KEY, APP_SECRET, *tokens]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("j.sqlite*"))
    for secret in secrets:
        assert secret not in process.stderr and secret not in process.stdout
        assert secret.encode() not in stored


def test_the_receivers_process_imports_no_dlt_pyarrow_or_duckdb() -> None:
    """What the process loads beyond the ``feishu_tasks`` package itself (whose ``__init__`` loads the
    source until it is made lazy): nothing heavy. Once it is lazy, the whole list is checked."""
    probe = (
        "import sys, feishu_tasks; base = set(sys.modules);"
        "import feishu_followers.cli, feishu_followers.listen, feishu_followers.listen_settings,"
        " feishu_followers.receiver, feishu_followers.journal_writer, feishu_followers.long_connection;"
        "print(sorted(set(sys.modules) - base)); print(sorted(sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    added, everything = (json.loads(line.replace("'", '"')) for line in done.stdout.splitlines())
    heavy = ("dlt", "pyarrow", "duckdb", "pandas", "lark_oapi")
    assert not [m for m in added if m.split(".")[0] in heavy]
    if "dlt" not in everything:  # the package's source is lazy: nothing heavy at all
        assert not [m for m in everything if m.split(".")[0] in heavy]


def test_a_journal_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    process = Listener(blocker / "j.sqlite", tmp_path, listen_env())
    assert process.exit_code() == 1
    assert len(process.lines) == 1 and "cannot open the change journal" in process.lines[0]


def test_a_busy_port_is_one_line(listener: Listener, tmp_path: Path) -> None:
    port = listener.ready().rsplit(":", 1)[1].split("/")[0]
    process = Listener(tmp_path / "j.sqlite", tmp_path, listen_env(), ["--port", port])
    assert process.exit_code() == 1
    assert len(process.lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in process.lines[0]


def test_the_journal_is_the_one_run_finds_for_the_same_pipeline_options(tmp_path: Path) -> None:
    from feishu_followers.options import PIPELINE_NAME
    from feishu_tasks.journal import default_journal_path

    pipelines = tmp_path / "pipelines"
    command = [
        sys.executable,
        "-m",
        "feishu_followers.cli",
        "listen",
        "--port",
        "0",
        "--pipelines-dir",
        str(pipelines),
    ]
    started = subprocess.Popen(command, cwd=tmp_path, env=listen_env(), stderr=subprocess.PIPE, text=True)
    try:
        assert started.stderr is not None
        line = started.stderr.readline()  # the ready line: the journal it records to
        with sqlite3.connect(default_journal_path(pipelines, PIPELINE_NAME)) as db:
            wait_for(lambda: db.execute("select count(*) from receivers").fetchone() == (1,), "its heartbeat")
        started.send_signal(signal.SIGTERM)
        assert started.wait(30) == 0
    finally:
        if started.poll() is None:  # a failed check must not leave the receiver running
            started.kill()
            started.wait()
    assert f"journal {default_journal_path(pipelines, PIPELINE_NAME)}" in line


def test_without_the_events_extra_listen_says_which_extra_to_install(tmp_path: Path) -> None:
    probe = (
        "import sys; sys.modules['cryptography'] = None;"  # as if `cryptography` were not installed
        "from feishu_followers.cli import main; sys.exit(main(['listen', '--port', '0']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=listen_env(), cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "feishu-followers: error: listen needs the events extra (cryptography is missing): "
        "pip install 'feishu-task-followers[events]'"
    )
