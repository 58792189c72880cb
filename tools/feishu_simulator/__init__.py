"""A deterministic, fast simulator of the Feishu/Lark task API (v1, and v2's read side) on loopback HTTP.

Used by the demo, the end-to-end tests and the throughput benchmark: ``World`` is
the truth, ``Faults`` says how the API misbehaves, ``Simulator`` serves both.
Task v2 (task lists, tasks of a list, get task with members) is described in ``v2``.
"""

from .errors import TaskForbidden, TasklistForbidden, TasklistNotFound, TaskNotFound
from .faults import Faults
from .quota import DOCUMENTED_LIMITS
from .server import Simulator, serve_forever
from .stats import Stats
from .world import ID_TYPES, User, World

__all__ = [
    "DOCUMENTED_LIMITS",
    "ID_TYPES",
    "Faults",
    "Simulator",
    "Stats",
    "TaskForbidden",
    "TaskNotFound",
    "TasklistForbidden",
    "TasklistNotFound",
    "User",
    "World",
    "serve_forever",
]
