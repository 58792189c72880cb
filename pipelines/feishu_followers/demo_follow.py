"""The demo's follow phase: the simulator pushes a few changes, ``follow`` loads them in seconds.

After the demo's load, the simulated tenant gets the console settings a deployment makes (a
verification token and an encrypt key, the app's task subscription, the request URL of a
``follow`` receiver) and then a few follower changes. The follow machinery (``follow.Follower``:
the receiver thread, the journal, the micro-batches) runs in the demo's process; the phase ends
once every change the simulator pushed is loaded, and says how long that took.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from dlt.common.pipeline import get_dlt_pipelines_dir

from feishu_simulator import Simulator
from feishu_tasks.settings import DEFAULT_FOLLOW_EVERY_SECONDS

from .destination import checked_duckdb_file
from .events import EventKeys
from .follow import Follower, Schedule, changes_only
from .listen_settings import ListenSettings
from .lock import run_lock
from .options import RunOptions

DEMO_VERIFICATION_TOKEN = "demo-verification-token"  # the simulated console's, not a real one
DEMO_ENCRYPT_KEY = "demo-encrypt-key"
CHANGES = 5
EVERY_SECONDS = 0.5
PHASE_SECONDS = 25.0  # the phase gives up (and says so) past this: the demo stays short


def follow_phase(sim: Simulator, options: RunOptions, seed: int) -> str:
    """Push ``CHANGES`` follower changes and load them with ``follow``'s batches; the report line."""
    with tempfile.TemporaryDirectory(prefix="feishu-demo-journal-") as folder:
        journal = str(Path(folder) / "journal.sqlite")
        follow_options = dataclasses.replace(changes_only(options), journal=journal, quiet=True)
        settings = ListenSettings(journal, EventKeys(DEMO_VERIFICATION_TOKEN, DEMO_ENCRYPT_KEY))
        flags = {"host": "127.0.0.1", "port": 0}
        follower = Follower(follow_options, settings, flags, Schedule(EVERY_SECONDS), lambda line: None)
        driver = ChangeDriver(sim, follower, seed)
        pipelines_dir = options.pipelines_dir or get_dlt_pipelines_dir()
        with run_lock(options.pipeline_name, pipelines_dir, checked_duckdb_file(options)):
            thread = threading.Thread(target=driver.drive, name="demo-changes", daemon=True)
            thread.start()
            follower.serve()
            thread.join(PHASE_SECONDS)
    return driver.report(matches(options, sim, driver.changed))


def matches(options: RunOptions, sim: Simulator, task_ids: list[str]) -> bool:
    """Whether ``task_followers`` holds exactly the tenant's followers of these tasks now."""
    with duckdb.connect(options.duckdb_path, read_only=True) as con:
        rows = con.execute(
            f"select task_id, follower_id from {options.dataset}.task_followers "
            "where task_id in (select unnest(?))",
            [task_ids],
        ).fetchall()
    return {(t, f) for t, f in rows} == {(t, f) for t in task_ids for f in sim.world.followers(t)}


class ChangeDriver:
    """Sets the simulated console up, makes the changes, and stops the follower once they are loaded."""

    def __init__(self, sim: Simulator, follower: Follower, seed: int) -> None:
        self.sim, self.follower, self.rng = sim, follower, random.Random(seed)
        self.changed: list[str] = []
        self.seconds: float | None = None
        self.failure = ""

    def drive(self) -> None:
        deadline = time.monotonic() + PHASE_SECONDS
        try:
            self._wait(lambda: self.follower.loaded > 0, deadline, "the follower to start")
            events = self.sim.events
            events.settings.update(
                {"verification_token": DEMO_VERIFICATION_TOKEN, "encrypt_key": DEMO_ENCRYPT_KEY}
            )
            events.coverage.subscribe(None)  # as `feishu-followers subscribe` does
            events.set_request_url(self.follower.receiver.url)
            started = time.monotonic()
            self._change()
            self._wait(self._pushed, deadline, "the simulator's pushes")
            position = self._journal_position()
            self._wait(lambda: self.follower.loaded_through >= position, deadline, "the batch")
            self.seconds = time.monotonic() - started
        except TimeoutError as exc:
            self.failure = str(exc)
        finally:
            self.follower.stop()

    def _change(self) -> None:
        world = self.sim.world
        in_lists = {t for g in world.find_tasklists(app_member=True) for t in world.tasklist_tasks(g)}
        tasks = sorted(t for t in world.task_ids() if t in in_lists and world.followers(t))
        for task_id in self.rng.sample(tasks, min(CHANGES, len(tasks))):
            world.add_follower(task_id)
            self.changed.append(task_id)

    def _pushed(self) -> bool:
        snapshot = self.sim.events.outbox.snapshot()
        return bool(snapshot["pending"] == 0 and snapshot["in_flight"] == 0 and snapshot["queued"] == 0)

    def _journal_position(self) -> int:
        from feishu_tasks.journal import Journal

        with Journal(self.follower.options.journal or "") as journal:
            return journal.last_position()

    @staticmethod
    def _wait(condition: Callable[[], bool], deadline: float, what: str) -> None:
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def report(self, matched: bool) -> str:
        if self.seconds is None:
            return f"Follow: {self.failure or 'did not finish'} (the demo's load above is complete)"
        if not matched:
            return "Follow: the changes were loaded but task_followers differs from the tenant (a bug)"
        return (
            f"Follow (feishu-followers follow): the simulator pushed {len(self.changed)} follower changes "
            f"as Feishu's task events; received, recorded in the change journal and loaded within "
            f"{self.seconds:.1f} s (batches every {EVERY_SECONDS:g} s here, "
            f"{DEFAULT_FOLLOW_EVERY_SECONDS:g} s by default)."
        )
