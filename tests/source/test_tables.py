"""The table registry: one declaration per table, and everything derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from feishu_tasks import feishu_tasks, tables
from feishu_tasks.credentials import FeishuUserCredentials
from feishu_tasks.rows import arrow_schema
from feishu_tasks.tables import ALL_TABLES, SOURCE_TABLES, TOMBSTONE, Column, reference_markdown

REPO = Path(__file__).resolve().parents[2]


def test_the_table_reference_in_docs_is_generated_from_the_registry() -> None:
    written = (REPO / "docs" / "tables.md").read_text(encoding="utf-8")
    assert written == reference_markdown(), (
        "docs/tables.md is stale: run python tools/write_table_reference.py"
    )
    for table in ALL_TABLES:
        assert f"### `{table.name}`" in written


def test_the_source_has_one_resource_per_registry_table_and_lists_them_all() -> None:
    source = feishu_tasks(credentials=FeishuUserCredentials(user_access_token="u-names-only"))
    assert set(source.resources) == {"fetch_followers", *(table.name for table in SOURCE_TABLES)}
    assert set(source.selected_resources) == {table.name for table in SOURCE_TABLES}
    for table in SOURCE_TABLES:
        assert f"``{table.name}``" in (feishu_tasks.__doc__ or "")
        hints = source.resources[table.name].compute_table_schema()
        assert [name for name in hints["columns"] if name != TOMBSTONE] == list(table.column_names)
        assert hints["write_disposition"] == "merge"


def test_a_common_column_reaches_every_table_key_hint_schema_and_ddl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a column to every data table is one change: ``COMMON_COLUMNS``."""
    tenant = Column("tenant_2", "text", "the tenant", nullable=False)
    monkeypatch.setattr(tables, "COMMON_COLUMNS", (tenant,))
    for table in (*tables.SOURCE_TABLES, *tables.DERIVED_TABLES):
        assert table.columns[0] == tenant
        assert table.dlt_columns()["tenant_2"] == {"data_type": "text", "nullable": False}
        assert "tenant_2 varchar not null" in table.create_sql("t")
        for key in (table.merge_keys, table.primary_keys, table.row_keys):
            assert not key or key[0] == "tenant_2"
    assert tables.HISTORY_LOADS.primary_keys == ("tenant_2", "load_id")  # a load is its tenant's
    assert "tenant_2" not in tables.VIEW_HASHES.column_names  # the views: the dataset's, every tenant's
    assert "tenant_2" not in arrow_schema(tables.TASK_FOLLOWERS).names  # the resources add its value


def test_every_table_of_rows_carries_tenant_key_first_in_every_key() -> None:
    for table in (*tables.SOURCE_TABLES, *tables.DERIVED_TABLES, tables.HISTORY_LOADS):
        assert table.column_names[0] == "tenant_key"
        for key in (table.merge_keys, table.primary_keys, table.row_keys):
            assert not key or key[0] == "tenant_key"


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda table: table.name)
def test_every_key_names_declared_columns(table: tables.Table) -> None:
    declared = set(table.column_names)
    assert set(table.merge_keys) | set(table.primary_keys) | set(table.row_keys) <= declared
    assert all(column.meaning for column in table.columns)


def test_dlt_child_tables_get_tenant_key_from_their_parent_row() -> None:
    """``tasks__collaborators`` (any child table dlt makes of a listed object): dlt's normalizer
    copies the root row's ``tenant_key`` into every nested row (e2e: test_store_app,
    test_tenant_migration)."""
    from dlt.common.normalizers.json.relational import DataItemNormalizer

    source = feishu_tasks(credentials=FeishuUserCredentials(user_access_token="u-names-only"))
    config = DataItemNormalizer.get_normalizer_config(source.schema)
    assert config["propagation"]["root"] == {"tenant_key": "tenant_key"}
