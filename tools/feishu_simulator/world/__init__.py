"""The simulated tenant's data, the single source of truth the HTTP side serves.

``World`` (``world.py``) composes one part per concern; the modules, from the bottom up:
``records`` (the dataclasses), ``changes`` (the lock and the change hook), ``people``,
``seeded`` (what a seed makes), ``v1_shapes`` / ``v2_shapes`` (records as JSON),
``tasks``, ``v2_tasks``, ``tasklists``.  Nothing here imports the HTTP side.
"""

from .changes import Change, ChangeKind
from .people import ID_TYPES, User
from .seeded import APP_FOLLOWER_SHARE
from .world import World

__all__ = ["APP_FOLLOWER_SHARE", "Change", "ChangeKind", "ID_TYPES", "User", "World"]
