"""dlt's collector interface, turned into the steps a progress display shows.

dlt tells a collector when it starts and stops extracting, normalizing and loading; the
extract is our fetch, which the display follows through ``FetchStats`` instead. No counters
are kept: the display has better ones.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

import dlt
from dlt.common.runtime.collector import Collector


class StepCollector(Collector):
    """Calls ``on_step("normalize" | "load", started)`` around dlt's steps of those names."""

    STEPS = ("normalize", "load")

    def __init__(self, on_step: Callable[[str, bool], None]) -> None:
        self.on_step = on_step
        self.step = ""
        self._running: str | None = None

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        pass

    def _start(self, step: str) -> None:
        name = step.split(" ", 1)[0].lower()  # "Load feishu_tasks in 1795620443.81" → "load"
        self._running = name if name in self.STEPS else None
        if self._running:
            self.on_step(self._running, True)

    def _stop(self) -> None:
        if self._running:
            self.on_step(self._running, False)
            self._running = None


def dlt_log_collector() -> Collector:
    """dlt's own progress log (``--verbose``), with memory figures only where psutil is installed.

    Without psutil, dlt's collector would warn about it on every run, pointing at our code.
    """
    has_psutil = importlib.util.find_spec("psutil") is not None
    return dlt.progress.log(10, sys.stderr, dump_system_stats=has_psutil)
