"""A deterministic, fast simulator of the Feishu/Lark task v1 API on loopback HTTP.

Used by the demo, the end-to-end tests and the throughput benchmark: ``World`` is
the truth, ``Faults`` says how the API misbehaves, ``Simulator`` serves both.
"""

from .faults import Faults
from .server import Simulator, serve_forever
from .stats import Stats
from .world import ID_TYPES, TaskForbidden, TaskNotFound, User, World

__all__ = [
    "ID_TYPES",
    "Faults",
    "Simulator",
    "Stats",
    "TaskForbidden",
    "TaskNotFound",
    "User",
    "World",
    "serve_forever",
]
