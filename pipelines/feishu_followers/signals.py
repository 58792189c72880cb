"""Ctrl-C and SIGTERM end a run within seconds, keeping what it fetched.

Cron, systemd, Airflow and Kubernetes stop a job with SIGTERM; a person presses Ctrl-C. The
first signal asks the run to stop: no new task starts, the requests in flight are cancelled,
and what was fetched is loaded (or, if the load cannot finish, left as a pending dlt package
that the next run loads first). A second signal aborts at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from feishu_tasks.control import RunControl

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Aborted(KeyboardInterrupt):
    """A second signal: stop now. A KeyboardInterrupt, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class StopRequest:
    """The signals received so far (the first asks to stop, a second aborts)."""

    received: list[int] = field(default_factory=list)

    @property
    def signum(self) -> int | None:
        return self.received[0] if self.received else None

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports it: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or 0)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@contextmanager
def stop_on_signals(control: RunControl, notify: Callable[[str], None]) -> Iterator[StopRequest]:
    """While inside, SIGINT and SIGTERM set ``control.inputs.stop`` (first) or abort (second)."""
    request = StopRequest()

    def handle(signum: int, frame: FrameType | None) -> None:
        if request.received:
            raise Aborted(signum)
        request.received.append(signum)
        control.inputs.stop.set()
        notify(
            f"{signal_name(signum)} received: stopping, loading what was fetched "
            "(send it again to stop at once)"
        )

    previous = {signum: signal.signal(signum, handle) for signum in HANDLED}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
