"""Fixtures every tier shares, and the tiers themselves: a test's folder says what it needs.

- ``source/`` and ``pipeline/``: unit tests of the two packages (pure functions, fake clocks, no
  servers), marked ``unit`` here so that ``-m unit`` runs them alone in a few seconds;
- ``simulator/``: the Feishu API simulator, over real HTTP;
- ``e2e/``: the pipeline against the simulator, asserting on loaded DuckDB and Postgres tables.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .pg_server import postgres_server, postgres_url  # noqa: F401  (fixtures)

TESTS = Path(__file__).resolve().parent
UNIT_FOLDERS = ("source", "pipeline")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under a unit folder ``unit``."""
    for item in items:
        folder = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if folder in UNIT_FOLDERS:
            item.add_marker(pytest.mark.unit)
