"""Which destination dlt's working folder belongs to: a pending load is completed there or nowhere.

One working folder (``--pipelines-dir`` / the pipeline's name) holds dlt's state and the load
packages a run has not finished loading. dlt completes a pending package into whatever
destination the next run names, so a run for ``lark.duckdb`` after a stopped run for
``feishu.duckdb`` loaded the other tenant's rows into ``lark.duckdb`` (issue 21, item 1), and
the local state (the discover cursor) follows the folder, not the destination.

So the folder records the destination it works for (``feishu_destination.json``: the DuckDB
file, or the destination's credentials without their password, and the dataset). A run for
another destination then

- refuses, in one line, while a package for the recorded one is pending: it neither loads it
  nor drops it, and says how to complete it;
- otherwise takes the folder over: the local state and schemas are dropped, and dlt restores
  this destination's own from the destination itself (state is kept there after every load).

A folder from before this record is taken as it is, for the destination of its first run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination.exceptions import SqlClientNotAvailable

from feishu_tasks.errors import FatalError

from .destination import DEFAULT_DESTINATION
from .options import RunOptions

MARKER = "feishu_destination.json"


class OtherDestinationPending(FatalError):
    """The working folder holds an unfinished load for another destination."""


def destination_identity(options: RunOptions, pipeline: dlt.Pipeline) -> dict[str, str]:
    """Where this run loads, as recorded (never a password)."""
    if options.destination == DEFAULT_DESTINATION:
        where = str(Path(options.duckdb_path).resolve())
    else:
        try:
            with pipeline.sql_client() as client:
                where = str(client.credentials)  # dlt's credentials print without their password
        except SqlClientNotAvailable:
            config: Any = pipeline.destination_client().config
            where = str(getattr(config, "bucket_url", "") or options.destination)
    identity = {"destination": options.destination, "where": where, "dataset": options.dataset}
    if options.tenant_key:  # a store app's tenant: its loads are its own
        identity["tenant"] = options.tenant_key
    return identity


def describe_identity(identity: dict[str, str]) -> str:
    where, dataset = identity.get("where"), identity.get("dataset")
    if identity.get("destination") == DEFAULT_DESTINATION:
        return f"{where} (dataset {dataset})"
    return f"the {identity.get('destination')} destination {where} (dataset {dataset})"


def claim_working_folder(options: RunOptions, pipeline: dlt.Pipeline) -> bool:
    """Record this run's destination in the pipeline's working folder; True if it was taken over
    from another one (the caller then makes its pipeline afresh). Refuses while the other one's
    load is pending."""
    marker = Path(pipeline.working_dir) / MARKER
    mine = destination_identity(options, pipeline)
    recorded = _read(marker)
    if recorded is None or recorded == mine:
        _write(marker, mine)
        return False
    if pipeline.has_pending_data:
        raise OtherDestinationPending(
            f"dlt's working folder {pipeline.working_dir} holds a load for {describe_identity(recorded)} "
            f"that is not complete, and this run is for {describe_identity(mine)}: nothing was loaded or "
            "dropped. Run once for that destination to complete it, or give each destination its own "
            "--pipelines-dir"
        )
    pipeline.drop()  # its state lives at its own destination; this one's is restored from here
    _write(marker, mine)
    return True


def _read(marker: Path) -> dict[str, str] | None:
    try:
        value = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write(marker: Path, identity: dict[str, str]) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    temporary = marker.with_suffix(".tmp")
    temporary.write_text(json.dumps(identity, sort_keys=True))
    temporary.replace(marker)
