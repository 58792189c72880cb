"""What follows every load of the ``feishu_tasks`` source: the follow history and the views.

dlt has no hook that runs after a load, so whoever runs the pipeline calls ``after_load``:
our CLI does, and so should any dlt pipeline, Dagster asset or Airflow task that loads the
source, to get the same tables the CLI makes::

    pipeline.run(feishu_tasks(...))
    after_load(pipeline)

Each step is idempotent and catches up on every load it has not seen, so calling it late, or
twice, is safe.
"""

from __future__ import annotations

import dlt

from .destination import builds_derived_relations
from .history import apply_history
from .views import create_views


def after_load(pipeline: dlt.Pipeline) -> None:
    """Apply the follow history of every completed load not yet applied, then refresh the views.

    Where they cannot be built (a destination without SQL, such as a filesystem bucket), nothing.
    """
    if builds_derived_relations(pipeline):
        apply_history(pipeline)
        create_views(pipeline)


# ---------------------------------------------------------------------------- dlt's working folder
# Keeping dlt's working folder bounded under a scheduler.
#
# dlt keeps every completed load package in the pipeline's working folder (34 runs → 34 MB,
# 268 runs → 52 MB, growing for ever under cron). Recovery needs only the packages that are not
# loaded yet, and the follow history is applied from the destination's ``_dlt_loads``, not from
# packages: so after a run the completed packages go, but the newest (for ``dlt pipeline … info``).
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
