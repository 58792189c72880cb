"""The credentials' ``app_type`` and a store app's tenant, checked in one line before any request."""

from __future__ import annotations

import pytest

from feishu_tasks.errors import ConfigError
from feishu_tasks.store_app import check_app_type, tenant_pipeline_name
from feishu_tasks.tenant_column import tenant_condition

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("app_type", "tenant_key", "kind"),
    [
        (None, None, "custom"),
        ("custom", None, "custom"),
        ("Store", "t_1", "store"),
        ("custom", "own.key", "custom"),
    ],
)
def test_accepted(app_type: str | None, tenant_key: str | None, kind: str) -> None:
    assert check_app_type(app_type, tenant_key) == kind


@pytest.mark.parametrize(
    ("app_type", "tenant_key", "says"),
    [
        ("isv", None, "app_type must be 'custom' or 'store'"),
        ("store", None, "a store app reads one tenant per load"),
        ("store", "a'b", "is not a tenant key"),
        ("custom", "x y", "is not a tenant key"),
    ],
)
def test_refused_in_one_line(app_type: str, tenant_key: str | None, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_app_type(app_type, tenant_key)
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_the_tenant_condition_keeps_one_tenant_or_all() -> None:
    assert tenant_condition(None) == "1 = 1"
    assert tenant_condition("t_1", "s.") == "s.tenant_key = 't_1'"
    with pytest.raises(ValueError):
        tenant_condition("a'b")


def test_each_tenant_gets_a_pipeline_name_dlt_accepts_and_no_two_share_one() -> None:
    assert (
        tenant_pipeline_name("feishu_followers", "2ed263bf32cf1651") == "feishu_followers__2ed263bf32cf1651"
    )
    keys = ["a.b", "a_b", "a-b", "A_B", "x" * 128, "x" * 127 + "y"]
    names = [tenant_pipeline_name("feishu_followers", key) for key in keys]
    assert len(set(names)) == len(keys)
    for name in names:
        assert len(name) <= 64 and name.isidentifier() and name == name.lower(), name
