"""pyarrow's question "is pandas installed?", answered "no" in processes that never use pandas.

pyarrow asks it on its first conversion of Python values (``pa.array``; ``Table.from_pylist``,
which dlt's parquet writer uses for the listed task objects of ``--discover`` and the task
lists), by importing pandas: 37–53 MB of RSS that ``run`` and ``follow`` never use (BENCHMARKS.md,
"The floor of one run"). For that question pyarrow imports once per process and keeps the
answer (``_PandasAPIShim._check_import(raise_=False)``); whatever really wants pandas later
(``Table.to_pandas``) asks with ``raise_=True``, which imports it then. So the CLI's ``run`` and
``follow`` let the first question find no pandas, and nothing else changes: a later ``import
pandas`` works, and so does ``to_pandas``. Not for the library or the demo (notebooks and the
demo's figures use pandas, and may hand pyarrow pandas objects). Held by
``tests/e2e/test_memory.py``: a ``--discover`` run ends without pandas, and the answer does not
stop a later ``to_pandas``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType


class _NoPandas(importlib.abc.MetaPathFinder):
    """Finds no pandas, for as long as it is first on ``sys.meta_path``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def answer_pyarrows_pandas_probe() -> bool:
    """Let pyarrow's first "is pandas installed?" find none; False if pandas is imported already."""
    if "pandas" in sys.modules:
        return False
    import pyarrow

    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pyarrow.array([0])  # the first conversion of Python values: pyarrow asks here, once
    finally:
        sys.meta_path.remove(finder)
    return "pandas" not in sys.modules
