"""What the source says it produces is what it produces: ``help(feishu_tasks)`` and the docs."""

from __future__ import annotations

from pathlib import Path

from feishu_tasks import FeishuUserCredentials, feishu_tasks

REPO = Path(__file__).resolve().parents[2]


def produced_tables() -> list[str]:
    source = feishu_tasks(credentials=FeishuUserCredentials(user_access_token="names-only"))
    return sorted(name for name, resource in source.resources.items() if resource.selected)


def test_help_and_the_scheduler_docs_name_every_table() -> None:
    tables = produced_tables()
    assert len(tables) == 7, tables
    returns = (feishu_tasks.__doc__ or "").split("Returns:")[1]
    schedulers = (REPO / "docs" / "schedulers.md").read_text()
    for table in tables:
        assert f"``{table}``" in returns, table
        assert f"_{table}`" in schedulers, table  # the Dagster asset, dlt_feishu_tasks_<table>
