"""Keeping dlt's working folder bounded under a scheduler.

dlt keeps every completed load package in the pipeline's working folder (34 runs → 34 MB,
268 runs → 52 MB, growing for ever under cron). Recovery needs only the packages that are not
loaded yet, and the follow history is applied from the destination's ``_dlt_loads``, not from
packages: so after a run the completed packages go, but the newest (for ``dlt pipeline … info``).
"""

from __future__ import annotations

import dlt

KEEP_COMPLETED = 1


def prune_completed_packages(pipeline: dlt.Pipeline, keep: int = KEEP_COMPLETED) -> int:
    """Delete all but the newest ``keep`` completed load packages; returns how many went."""
    completed = sorted(pipeline.list_completed_load_packages())
    doomed = completed[: max(0, len(completed) - keep)]
    # dlt has no public call that deletes a completed package; its load storage does it.
    storage = pipeline._get_load_storage()
    for load_id in doomed:
        storage.delete_loaded_package(load_id)
    return len(doomed)
