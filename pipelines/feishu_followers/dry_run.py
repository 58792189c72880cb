"""What a dry run may touch: it reads the destination, and writes nothing there.

A dry run lists the tasks a run would fetch and what that costs, from the destination's status
table. It neither completes a load an earlier run left pending (the next real run does, first)
nor probes the destination with a table, nor creates a DuckDB file that is not there: against a
file that does not exist yet, it reads an empty in-memory database instead (dlt takes a DuckDB
connection as credentials).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.destination import Destination

from .destination import DEFAULT_DESTINATION
from .options import RunOptions


def dry_run_destination(options: RunOptions) -> Destination[Any, Any] | None:
    """An empty in-memory DuckDB for a dry run whose DuckDB file does not exist; else None (the real one)."""
    if not options.dry_run or options.destination != DEFAULT_DESTINATION:
        return None
    if Path(options.duckdb_path).exists():
        return None
    return dlt.destinations.duckdb(duckdb.connect(":memory:"))


def pending_note(pipeline: dlt.Pipeline) -> str | None:
    """What a dry run says about a load an earlier run left pending (it does not complete it)."""
    if not pipeline.has_pending_data:
        return None
    return "a load of an earlier run is pending: the next run (not a dry run) loads it first"
