"""Durations as people write them in flags and config: ``90s``, ``15m``, ``6h``, ``7d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

from feishu_tasks.arguments import CENTURY
from feishu_tasks.errors import ConfigError

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
LONGEST = timedelta(seconds=CENTURY)  # the source's bound on its seconds arguments too
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``7d``, ``2w`` or plain seconds."""
    match = _DURATION.fullmatch(str(text))
    if not match:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 15m, 6h, 7d)")
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds > LONGEST.total_seconds():  # datetime arithmetic overflows long before infinity
        raise ConfigError(f"not a usable duration: {text!r} is longer than 100 years")
    return timedelta(seconds=seconds)
