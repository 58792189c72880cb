"""The long connection, both ends: ``listen --long-connection`` against the simulator's socket, and
the simulator against the official SDK's client (``lark.ws.Client``), so that the simulator speaks
what Feishu's own client expects and our client what the simulator speaks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from feishu_simulator import Simulator, World

from .listen_harness import (
    VERIFICATION_TOKEN,
    Listener,
    deliveries,
    journal_rows,
    listen_env,
    settled,
    wait_for,
)

APP_ID, APP_SECRET = "cli_longconn", "longconn-secret-8e2f"


def make_sim(world: World, parts: int = 1) -> Simulator:
    sim = Simulator(world, app_id=APP_ID, app_secret=APP_SECRET)
    sim.events.settings.update(
        {
            "verification_token": VERIFICATION_TOKEN,
            "time_scale": 0.001,
            "long_connection_parts": parts,  # each event in several DATA frames (sum / seq)
            "reconnect_interval_seconds": 1,
            "reconnect_nonce_seconds": 0,
            "ping_interval_seconds": 1,
        }
    )
    return sim.start()


def long_env(sim: Simulator, secret: str = APP_SECRET) -> dict[str, str]:
    return listen_env(
        encrypt_key=None,
        SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID=APP_ID,
        SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET=secret,
        SOURCES__FEISHU_TASKS__BASE_URL=sim.base_url,
    )


def test_events_arrive_acknowledged_after_the_record_and_a_dropped_connection_reconnects(
    tmp_path: Path,
) -> None:
    world = World.generate(tasks=30, seed=31)
    journal = tmp_path / "j.sqlite"
    with make_sim(world, parts=3) as sim:
        listener = Listener(journal, tmp_path, long_env(sim), ["--long-connection"])
        listener.ready_long_connection()
        wait_for(lambda: sim.events.long_connections.connected() == 1, "the connection")
        acknowledged_seen_in_journal: list[bool] = []
        stop = threading.Event()

        def watch() -> None:  # whatever the simulator has as acknowledged is already in the journal
            while not stop.is_set():
                acked = sim.events.acknowledged_ids()
                recorded = {row[0] for row in journal_rows(journal)}
                acknowledged_seen_in_journal.append(acked <= recorded)

        watcher = threading.Thread(target=watch)
        watcher.start()
        ids = world.task_ids()
        for task_id in ids[:10]:
            world.add_follower(task_id)
        wait_for(lambda: settled(sim) and len(sim.events.acknowledged_ids()) == 10, "the first events")
        assert sim.events.drop_connections() == 1
        for task_id in ids[10:20]:
            world.add_follower(task_id)  # pushed while it reconnects: retried until answered
        wait_for(lambda: sim.events.long_connections.opened >= 2, "the reconnection", timeout=60)
        sim.events.retry_now()
        wait_for(lambda: settled(sim) and len(sim.events.acknowledged_ids()) == 20, "the later events", 60)
        stop.set()
        watcher.join()
        pushed = deliveries(sim)
    assert listener.stop() == 0
    assert all(acknowledged_seen_in_journal) and len(acknowledged_seen_in_journal) > 1
    assert {d["state"] for d in pushed} == {"acknowledged"}
    recorded = [row[0] for row in journal_rows(journal)]
    assert sorted(recorded) == sorted(d["event_id"] for d in pushed)
    assert sum("long connection open" in line for line in listener.lines) >= 2
    for line in listener.lines:
        assert APP_SECRET not in line and "ticket=" not in line


def test_refused_app_credentials_stop_listen_with_one_line(tmp_path: Path) -> None:
    with make_sim(World.generate(tasks=3, seed=1)) as sim:
        listener = Listener(tmp_path / "j.sqlite", tmp_path, long_env(sim, "wrong"), ["--long-connection"])
        assert listener.exit_code() == 1
    errors = [line for line in listener.lines if "error" in line]
    assert len(errors) == 1 and "refused the long connection for app cli_longconn" in errors[0]
    assert "Traceback" not in listener.stderr and "wrong" not in listener.stderr


OFFICIAL_CLIENT = textwrap.dedent(
    """
    import sys, threading
    import lark_oapi as lark
    from lark_oapi.ws.pb.pbbp2_pb2 import Frame as LarkFrame
    from feishu_followers import ws_frames
    from feishu_simulator.events import frames as sim_frames

    # The frames: what the official module writes, both copies read, and the other way round.
    theirs = LarkFrame(SeqID=7, LogID=0, service=3, method=1, payload=b"{}")
    h = theirs.headers.add(); h.key, h.value = "type", "event"
    for ours in (ws_frames, sim_frames):
        back = ours.parse(theirs.SerializeToString())
        assert (back.SeqID, back.service, back.method, ours.headers_of(back)) == (7, 3, 1, {"type": "event"})
        ours_bytes = ours.make_frame(1, 3, {"type": "event"}, b"{}", 7).SerializeToString()
        again = LarkFrame(); again.ParseFromString(ours_bytes)
        assert again == theirs

    def seen(event):
        print(event.header.event_id, event.header.event_type, flush=True)

    handler = (
        lark.EventDispatcherHandler.builder("", "")
        .register_p2_customized_event("task.task.update_user_access_v2", seen)
        .register_p2_customized_event("task.task.update_tenant_v1", seen)
        .build()
    )
    print("ready", flush=True)
    lark.ws.Client(sys.argv[2], sys.argv[3], event_handler=handler, domain=sys.argv[1],
                   log_level=lark.LogLevel.WARNING).start()
    """
)


def test_the_official_sdk_client_receives_the_simulators_events(tmp_path: Path) -> None:
    world = World.generate(tasks=10, seed=32)
    script = tmp_path / "official.py"
    script.write_text(OFFICIAL_CLIENT)
    with make_sim(world, parts=2) as sim:
        client = subprocess.Popen(
            [sys.executable, str(script), sim.base_url, APP_ID, APP_SECRET],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "ready", client.stderr.read() if client.stderr else ""
            wait_for(lambda: sim.events.long_connections.connected() == 1, "the official client", timeout=60)
            world.add_follower(world.task_ids()[0])
            wait_for(lambda: settled(sim), "its answers", timeout=60)
            pushed = deliveries(sim)
            got = [client.stdout.readline().split() for _ in pushed]
        finally:
            client.kill()
            client.wait(30)
    assert {d["state"] for d in pushed} == {"acknowledged"}  # it answered 200
    assert sorted(event_id for event_id, _ in got) == sorted(d["event_id"] for d in pushed)
