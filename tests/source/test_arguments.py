"""The source's numeric arguments: a table of values → accepted, or the one line that says why not."""

from __future__ import annotations

from typing import Any

import pytest

from feishu_followers.options import parse_duration
from feishu_tasks import feishu_tasks
from feishu_tasks.arguments import check_arguments
from feishu_tasks.credentials import FeishuUserCredentials
from feishu_tasks.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("concurrency", 1),
        ("concurrency", 1000),
        ("max_rps", 0),
        ("max_rpm", 1000.5),
        ("timeout_seconds", 0.01),
        ("stale_after_seconds", 0),
        ("max_requests", 0),
        ("max_attempts", 1),
        ("backoff_base_seconds", 0),
        ("max_pages_per_task", 1000),
    ],
)
def test_values_in_range_pass(name: str, value: Any) -> None:
    check_arguments(**{name: value})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("concurrency", 0, "at least 1"),
        ("concurrency", 10**6, "at most 1000"),
        ("concurrency", 2.5, "a whole number"),
        ("max_rpm", -5, "at least 0"),
        ("max_rps", float("nan"), "a number"),
        ("timeout_seconds", 0, "greater than 0"),
        ("timeout_seconds", float("inf"), "greater than 0"),
        ("max_attempts", 0, "at least 1"),
        ("max_pages_per_task", True, "a whole number"),
        ("stale_after_seconds", 1e300, "at most"),
        ("discover_lookback_seconds", -1, "at least 0"),
        ("max_requests", -1, "at least 0"),
    ],
)
def test_values_out_of_range_name_the_argument_and_its_env_var(name: str, value: Any, expected: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"^{name} \(SOURCES__FEISHU_TASKS__{name.upper()}\): .*{expected}"
    ):
        check_arguments(**{name: value})


def test_the_source_checks_before_anything_runs() -> None:
    credentials = FeishuUserCredentials()
    credentials.user_access_token = "u-test"
    with pytest.raises(ConfigError, match="concurrency"):
        feishu_tasks(task_ids=["x"], credentials=credentials, concurrency=0)


@pytest.mark.parametrize("text", ["99999999999999d", "36501d", "1e9"])
def test_durations_past_a_century_or_not_durations_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)
