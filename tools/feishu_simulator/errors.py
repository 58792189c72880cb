"""Why the world refuses a read: raised by the world's parts, turned into API errors by the handlers.

Kept apart so that the world (``world/``) and the HTTP side (``api/``) share them without
either importing the other's internals.
"""

from __future__ import annotations


class TaskNotFound(KeyError):
    """The task id is not in the world (v1 answers 400/1470602, v2 404/1470404)."""


class TaskForbidden(PermissionError):
    """The task exists but the app may not read it (v1 answers 400/1470432, v2 403/1470403)."""


class TasklistNotFound(KeyError):
    """The task list guid is not in the world (v2 answers 404/1470404)."""


class TasklistForbidden(PermissionError):
    """The list exists but the caller may not read it (v2 answers 403/1470403)."""
