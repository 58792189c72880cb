"""Every notebook runs headless from a clean state (it builds its own data), so none can rot."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image  # matplotlib's own dependency

from .conftest import REPO, cli

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    assert REPO / "notebooks" / "explore_followers.ipynb" in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_from_a_clean_state(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "notebook.duckdb"
    monkeypatch.setenv("FEISHU_NOTEBOOK_DUCKDB", str(database))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    for key in [k for k in os.environ if k.startswith("SOURCES__")]:
        monkeypatch.delenv(key)  # a developer's real credentials must not leak into the demo
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors
    assert database.exists()  # it built its own data where it was told to
    charts = [
        out for cell in nb.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})
    ]
    markdown = sum(cell.cell_type == "markdown" for cell in nb.cells)
    assert charts and markdown > len(charts)  # each chart comes with a line of explanation
    if path.name == "explore_followers.ipynb":  # distribution, tasks, followers, co-following, churn, health
        assert len(charts) == 6


def drawn_figures(png: Path) -> object:
    """The figures a chart was drawn from, which make_readme_chart.py writes into the PNG."""
    return json.loads(Image.open(png).text["Description"])


def test_the_readme_chart_is_what_the_demo_gives_now(tmp_path: Path) -> None:
    """The README's picture: the notebook's chart functions on today's demo data (redraw it with
    ``python notebooks/make_readme_chart.py`` when this fails)."""
    script = REPO / "notebooks" / "make_readme_chart.py"
    redrawn = tmp_path / "chart.png"
    done = cli([str(redrawn)], tmp_path, command=[sys.executable, str(script)], timeout=300)
    assert done.returncode == 0, done.stderr
    committed = REPO / "notebooks" / "img" / "followers_per_task.png"
    assert drawn_figures(redrawn) == drawn_figures(committed)
    assert f"]({committed.relative_to(REPO)})" in (REPO / "README.md").read_text()
