"""``listen`` under the faults of the issue: kill -9 while Feishu keeps pushing and retrying, and a
journal whose disk fills up and empties again. The truth is the simulator's: every event it
made, each recorded once."""

from __future__ import annotations

import random
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from feishu_simulator import Simulator, World

from .listen_harness import (
    ENCRYPT_KEY,
    VERIFICATION_TOKEN,
    Listener,
    deliveries,
    journal_rows,
    listen_env,
    post,
    settled,
    wait_for,
)
from .test_disk_full import needs_tmpfs

KILLS = 3
CHANGES = 240


def make_sim(world: World, time_scale: float) -> Simulator:
    sim = Simulator(world)
    sim.events.settings.update(
        {
            "verification_token": VERIFICATION_TOKEN,
            "encrypt_key": ENCRYPT_KEY,
            "time_scale": time_scale,  # retries after 30 ms, 0.6 s, 7.2 s, 43 s: longer than a restart
            "duplicate_fraction": 0.1,
            "reorder_window_ms": 20,
        }
    )
    return sim.start()


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1].split("/")[0]


def test_kill_9_at_random_moments_loses_nothing_and_records_each_event_once(tmp_path: Path) -> None:
    world = World.generate(tasks=60, seed=21)
    journal = tmp_path / "j.sqlite"
    rng = random.Random(17)
    with make_sim(world, time_scale=0.002) as sim:
        listener = Listener(journal, tmp_path, listen_env())
        url = listener.ready()
        sim.events.set_request_url(url)
        done = threading.Event()

        def keep_changing() -> None:
            ids = world.task_ids()
            for n in range(CHANGES):
                task_id = ids[n % len(ids)]
                followers = world.followers(task_id)
                if n % 3 == 2 and followers:
                    world.remove_follower(task_id, followers[0])
                else:
                    world.add_follower(task_id)
                if done.wait(0.02):  # ~50 changes a second, for ~5 s
                    return

        changer = threading.Thread(target=keep_changing)
        changer.start()
        for _ in range(KILLS):
            # a random moment: while requests are in flight, records are on their way, answers too
            threading.Event().wait(rng.uniform(0.1, 1.2))
            listener.kill()
            listener = Listener(journal, tmp_path, listen_env(), ["--port", port_of(url)])
            listener.ready()
        changer.join()
        sim.events.retry_now()  # Feishu's later retries, without their hours
        wait_for(lambda: settled(sim), "every delivery to settle", timeout=120)
        pushed = deliveries(sim)
    listener.stop()
    assert {d["state"] for d in pushed} == {"acknowledged"}, [
        d for d in pushed if d["state"] != "acknowledged"
    ]
    assert sum(d["attempts"] > 1 for d in pushed) > 0  # the kills cost pushes: they were retried
    rows = journal_rows(journal)
    recorded = [row[0] for row in rows]
    assert len(recorded) == len(set(recorded))  # each event once
    assert set(recorded) == {d["event_id"] for d in pushed}  # every event


@needs_tmpfs
def test_a_full_disk_is_503_said_once_and_recording_resumes_when_space_returns(tmp_path: Path) -> None:
    """The journal on a small tmpfs in a private mount namespace; a filler file fills it up and
    is removed again on the test's word (files in a control folder on the real disk)."""
    small, control = tmp_path / "small", tmp_path / "control"
    small.mkdir()
    control.mkdir()
    listen = shlex.join(
        [
            sys.executable,
            "-m",
            "feishu_followers.cli",
            "listen",
            "--port",
            "0",
            "--journal",
            f"{small}/j.sqlite",
        ]
    )
    script = f"""
mount -t tmpfs -o size=4m tmpfs {small} || exit 9
{listen} & pid=$!
while [ ! -e {control}/stop ]; do
  if [ -e {control}/fill ] && [ ! -e {control}/filled ]; then
    dd if=/dev/zero of={small}/filler bs=4k 2>/dev/null; touch {control}/filled
  fi
  if [ -e {control}/free ] && [ ! -e {control}/freed ]; then rm -f {small}/filler; touch {control}/freed; fi
  sleep 0.02
done
kill -TERM $pid; wait $pid; rc=$?
cp {small}/j.sqlite* {control}/
exit $rc
"""
    process = subprocess.Popen(
        ["unshare", "-rm", "sh", "-c", script],
        env=listen_env(),
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    listener = Listener.__new__(Listener)  # the harness's reader, on this process
    listener.journal, listener.process, listener.lines, listener.stdout = (
        control / "j.sqlite",
        process,
        [],
        "",
    )
    listener._reader = threading.Thread(target=listener._read, daemon=True)
    listener._reader.start()
    try:
        url = listener.ready()
        world = World.generate(tasks=200, seed=22)
        with make_sim(world, time_scale=0.001) as sim:
            sim.events.set_request_url(url)
            ids = world.task_ids()
            world.add_follower(ids[0])
            wait_for(lambda: settled(sim), "the first event")
            (control / "fill").touch()
            wait_for(lambda: (control / "filled").exists(), "the disk to fill")
            refused = 0
            for n, task_id in enumerate(ids[1:], 1):  # until the journal cannot grow: 503
                world.add_follower(task_id)
                wait_for(lambda: settled(sim) or _last_answer(sim) == "503", "an answer")
                if _last_answer(sim) == "503":
                    refused = n
                    break
            assert refused, "the full disk never refused a record"
            direct = post(url, b'{"schema": "2.0"}')  # answered before the journal: still 401, not 503
            assert direct.status_code == 401
            (control / "free").touch()
            wait_for(lambda: (control / "freed").exists(), "the space to return")
            sim.events.retry_now()
            wait_for(lambda: settled(sim), "the refused events to be recorded", timeout=60)
            pushed = deliveries(sim)
    finally:
        (control / "stop").touch()  # the namespace's controller ends, whatever happened
    assert process.wait(60) == 0, listener.stderr
    listener._reader.join(10)
    said = [line for line in listener.lines if "answering 503" in line]
    assert len(said) == 1 and "cannot write the change journal" in said[0], listener.stderr
    assert sum("can be written again" in line for line in listener.lines) == 1
    assert {d["state"] for d in pushed} == {"acknowledged"}
    assert any("503" in d["answers"] for d in pushed)
    recorded = [row[0] for row in journal_rows(control / "j.sqlite")]
    assert sorted(recorded) == sorted(d["event_id"] for d in pushed)


def _last_answer(sim: Simulator) -> str | None:
    answers = [a for d in deliveries(sim) for a in d["answers"]]
    return answers[-1] if answers else None


def test_sigint_is_as_clean_as_sigterm(tmp_path: Path) -> None:
    listener = Listener(tmp_path / "j.sqlite", tmp_path, listen_env())
    url = listener.ready()
    assert httpx.post(url, content=b"x", timeout=10).status_code == 401  # unsigned
    assert listener.stop(signal.SIGINT) == 0
    assert listener.lines[-1].startswith("feishu-followers: listen: stopped by SIGINT:")
