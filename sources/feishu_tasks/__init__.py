"""A dlt source for Feishu / Lark task followers.

Data path: task ids (given, or found by ``listings``: task lists, ``discover``) → ``scheduler``
(concurrent, paced requests in a thread of their own, through ``client``) → ``followers`` (the
pages of one task) → ``items`` (what crosses to dlt) → ``rows`` → ``resources`` (one dlt
resource per table of the registry, ``tables``; the table reference is docs/tables.md).

Example::

    import dlt
    from feishu_tasks import feishu_tasks

    pipeline = dlt.pipeline("feishu_followers", destination="duckdb", dataset_name="feishu_tasks")
    pipeline.run(feishu_tasks(task_ids=["0d38e26e-190a-49e9-93a2-35067763ed1f"]))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, FatalError, FeishuError, TaskError
from .settings import FEISHU_BASE_URL, LARK_BASE_URL

if TYPE_CHECKING:
    from .credentials import FeishuAppCredentials, FeishuUserCredentials
    from .source import feishu_tasks

__all__ = [
    "FEISHU_BASE_URL",
    "LARK_BASE_URL",
    "ConfigError",
    "FatalError",
    "FeishuAppCredentials",
    "FeishuError",
    "FeishuUserCredentials",
    "TaskError",
    "feishu_tasks",
]

# Names whose modules import dlt (and pyarrow): loaded on first use, not with the package, so that
# ``feishu-followers --help`` and the light modules (errors, settings) start in milliseconds.
_LAZY = {
    "feishu_tasks": ".source",
    "FeishuAppCredentials": ".credentials",
    "FeishuUserCredentials": ".credentials",
}


def __getattr__(name: str) -> Any:
    """The source and the credential specs, imported when first asked for (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
