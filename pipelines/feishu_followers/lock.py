"""One run at a time per pipeline and per destination: a second one refuses and touches nothing.

Two exclusive, non-blocking ``flock``s, taken before anything reads or writes the pipeline's
working folder or the destination:

- the pipeline's, beside its working folder: two runs of one pipeline would share its state
  and pending packages;
- the destination's, beside a DuckDB file: two pipelines (another ``--pipelines-dir``) loading
  the same file would interleave their merges and histories.

The kernel releases a ``flock`` when its holder dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from feishu_tasks.errors import FatalError


class PipelineBusy(FatalError):
    """Another process is running the same pipeline, or loading the same destination."""


@contextmanager
def _flock(path: Path, busy_message: str, what: str) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only folder, no permission, a full disk
        reason = exc.strerror or exc
        raise FatalError(f"cannot write {what} {path.parent} (lock {path.name}): {reason}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineBusy(busy_message) from None
        yield
    finally:
        os.close(fd)


def _lock_file(path: Path, what: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FatalError(f"cannot write {what} {path.parent}: {exc.strerror or exc}") from None
    return path


@contextmanager
def run_lock(
    pipeline_name: str,
    pipelines_dir: str | Path,
    duckdb_path: str | Path | None,
    former_names: Sequence[str] = (),
) -> Iterator[None]:
    """Hold the pipeline's lock and, for a DuckDB destination, the file's, for the whole run.

    ``former_names``: names the pipeline had before (migration.py); an older version locks
    those, so they are held too.
    """
    with ExitStack() as locks:
        for name in (pipeline_name, *former_names):
            pipeline_lock = _lock_file(Path(pipelines_dir) / f".{name}.lock", "the pipelines folder")
            locks.enter_context(
                _flock(
                    pipeline_lock,
                    f"another run of pipeline {name!r} is in progress (lock {pipeline_lock}); "
                    "wait for it to finish",
                    "the pipelines folder",
                )
            )
        if duckdb_path is not None:
            database = Path(duckdb_path).resolve()
            file_lock = _lock_file(database.with_name(database.name + ".lock"), "the DuckDB file's folder")
            locks.enter_context(
                _flock(
                    file_lock,
                    f"another run is loading {database} (lock {file_lock}), from another pipeline or "
                    "--pipelines-dir; wait for it to finish",
                    "the DuckDB file's folder",
                )
            )
        yield
