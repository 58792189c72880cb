"""The CLI's pipeline under its former name: its working folder becomes the current one's, once.

Earlier versions of the CLI named its dlt pipeline ``feishu_tasks`` while the example pipeline
and the Dagster and Airflow recipes named theirs ``feishu_followers``: a user moving from cron
to a scheduler got a second pipeline state without noticing. The CLI now uses
``feishu_followers`` too. An existing ``feishu_tasks`` working folder (its state with the discover cursor, its
pending load packages) is renamed under the run's lock, before dlt opens it, with one note.

dlt keys a pipeline on its name in more than the folder: ``state.json`` holds it (dlt sets the
pipeline's name from it, and restores state from the destination's ``_dlt_pipeline_state`` rows
of that name), and so does the state snapshot (``.restore``) of every pending load package.
Those are rewritten too. The destination's rows under the former name stay as history; the
first load under the new name writes the state under it (the name is part of the state's hash).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from dlt.common.storages.load_package import PackageStorage
from dlt.common.versioned_state import json_decode_state, json_encode_state

FORMER_PIPELINE_NAME = "feishu_tasks"
STATE_FILE = "state.json"


def former_names(pipeline_name: str, pipelines_dir: str | Path, current: str) -> list[str]:
    """The former name whose lock a run also takes: while its folder or lock is there, a run of
    an older version (which locks only that name) must not run beside this one."""
    if pipeline_name != current:
        return []  # a pipeline named by the user: nothing to migrate
    folder = Path(pipelines_dir)
    former = FORMER_PIPELINE_NAME
    if (folder / former).is_dir() or (folder / f".{former}.lock").exists():
        return [former]
    return []


def adopt_former_folder(pipelines_dir: str | Path, pipeline_name: str, notify: Callable[[str], None]) -> bool:
    """Rename the former pipeline's working folder to ``pipeline_name``'s; call under both locks.

    Only when the new folder does not exist yet: once a pipeline of the new name has run, its
    folder is the one that counts, and the old one is left alone (and said so).
    """
    pipelines = Path(pipelines_dir)
    old, new = pipelines / FORMER_PIPELINE_NAME, pipelines / pipeline_name
    if not old.is_dir():
        return False
    if new.exists():
        notify(
            f"note: dlt's working folder {old} of the pipeline's former name is left alone "
            f"({new} is in use); remove it when you no longer need it"
        )
        return False
    for state_file in _state_files(old):
        _rename_in_state(state_file, pipeline_name)
    os.replace(old, new)  # the commit point: a crash before it leaves the old folder, renamed next run
    notify(f"note: dlt's working folder {old} is now {new} (the pipeline is named {pipeline_name!r})")
    return True


def _state_files(working_dir: Path) -> Iterator[Path]:
    """The pipeline's state and the snapshot of it in each load package that is not loaded yet."""
    if (working_dir / STATE_FILE).is_file():
        yield working_dir / STATE_FILE
    snapshot = f"{PackageStorage.RESTORE_FOLDER}/{PackageStorage.RESTORE_STATE_FILE_NAME}"
    for package in (working_dir / "normalize" / "extracted", working_dir / "load"):
        yield from package.glob(f"**/{snapshot}")


def _rename_in_state(path: Path, pipeline_name: str) -> None:
    """Rewrite ``pipeline_name`` in one state file, atomically (a crash leaves the old or the new)."""
    try:
        state = json_decode_state(path.read_text(encoding="utf-8"))
    except ValueError:  # damaged: dlt says so, naming the folder, when it opens it
        return
    if state.get("pipeline_name") == pipeline_name:
        return
    state["pipeline_name"] = pipeline_name
    temporary = path.with_name(path.name + ".renaming")
    temporary.write_text(json_encode_state(state), encoding="utf-8")  # type: ignore[arg-type]
    os.replace(temporary, path)
