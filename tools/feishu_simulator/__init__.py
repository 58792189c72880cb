"""A deterministic, fast simulator of the Feishu/Lark task API (v1, and v2's read side) on loopback HTTP.

Used by the demo, the end-to-end tests and the throughput benchmark: ``World`` is
the truth, ``Faults`` says how the API misbehaves, ``Simulator`` serves both.

- ``world/``: the tenant's data, one part per concern composed by ``World``, and the
  change hook (``World.subscribe``) every mutation goes through;
- ``api/``: the HTTP side, one module of handlers per family of routes (what task v2
  answers, and on which documentation that rests, is described in ``api/v2.py``);
- ``server`` runs it on loopback in a thread; ``options`` / ``__main__`` from the command
  line; ``faults``, ``auth``, ``quota``, ``stats``: the settings and state the server keeps
  beside the world; ``errors``: the world's refusals, which the handlers answer.
"""

from .errors import TaskForbidden, TasklistForbidden, TasklistNotFound, TaskNotFound
from .faults import Faults
from .quota import DOCUMENTED_LIMITS
from .server import Simulator, serve_forever
from .stats import Stats
from .world import ID_TYPES, Change, ChangeKind, User, World

__all__ = [
    "DOCUMENTED_LIMITS",
    "ID_TYPES",
    "Change",
    "ChangeKind",
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
