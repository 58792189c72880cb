"""Write docs/tables.md from the table registry (sources/feishu_tasks/tables.py).

    python tools/write_table_reference.py

tests/source/test_tables.py fails while the file is out of date.
"""

from __future__ import annotations

from pathlib import Path

from feishu_tasks.tables import reference_markdown

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "tables.md"

if __name__ == "__main__":
    REFERENCE.write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {REFERENCE}")
