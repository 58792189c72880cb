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
