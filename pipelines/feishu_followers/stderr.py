"""Our one way to print a line on stderr.

A module of its own because ``--help``, ``listen`` and the receiver's process must not import
``errors.py`` (which imports dlt and duckdb) just to print.
"""

from __future__ import annotations

import sys

PREFIX = "feishu-followers: "  # every line we print on stderr starts so: greppable in a scheduler's log


def say(line: str) -> None:
    """One line of ours on stderr (a note, what a run waits for, an error)."""
    print(f"{PREFIX}{line}", file=sys.stderr, flush=True)
