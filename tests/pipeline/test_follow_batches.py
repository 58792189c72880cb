"""Which batch ``follow`` runs when: the sweep first and on its schedule, the changes when any."""

from __future__ import annotations

from datetime import timedelta

from feishu_followers.follow import Batches, Schedule, changes_only
from feishu_followers.options import RunOptions


def test_changes_only_batches_after_the_first_when_nothing_but_the_journal_is_given() -> None:
    batches = Batches(RunOptions(changed=True), Schedule(every=5, sweep_every=60))
    due = batches.due(newest=0, now=0.0)
    assert due is not None and due[0] == "sweep"  # the first batch finishes what a killed one left
    batches.started("sweep", 0, 0.0)
    assert batches.due(newest=0, now=1000.0) is None  # nothing new, and no sweep of its own
    assert batches.due(newest=3, now=1000.0) == ("changes", changes_only(RunOptions()))


def test_the_sweep_loads_the_given_tasks_again_on_its_schedule_and_changes_between() -> None:
    options = RunOptions(discover=True, stale_after=timedelta(hours=6), changed=True)
    batches = Batches(options, Schedule(every=5, sweep_every=60))
    why, sweep = batches.due(newest=0, now=0.0) or ("", options)
    assert why == "sweep" and sweep.discover and sweep.stale_after == timedelta(hours=6) and sweep.changed
    batches.started("sweep", 0, 0.0)
    assert batches.due(newest=0, now=59.0) is None
    why, changes = batches.due(newest=1, now=59.0) or ("", options)
    assert why == "changes" and not changes.discover and changes.stale_after is None and changes.changed
    batches.started("changes", 1, 59.0)
    assert batches.due(newest=1, now=60.0) == ("sweep", sweep)
