"""One run at a time per pipeline: a second one refuses instead of corrupting state."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dlt

from feishu_tasks.errors import FatalError


class PipelineBusy(FatalError):
    """Another process is running the same pipeline."""


@contextmanager
def pipeline_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    """An exclusive, non-blocking ``flock`` beside the pipeline's working folder.

    The kernel releases it when the holder dies, so a killed run never leaves a stale lock.
    """
    path = Path(pipeline.pipelines_dir) / f".{pipeline.pipeline_name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineBusy(
                f"another run of pipeline {pipeline.pipeline_name!r} is in progress "
                f"(lock {path}); wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)
