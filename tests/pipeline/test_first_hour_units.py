"""What a new user meets first, one table each: usage errors, missing packages, config lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dlt.common.configuration.exceptions import ConfigFieldMissingException, LookupTrace
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.exceptions import MissingDependencyException

from feishu_followers.cli import build_parser, parse_arguments
from feishu_followers.errors import explain_failure, install_command, missing_config_line
from feishu_followers.preflight import check_base_url
from feishu_tasks.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def raised_as_dlt_does(kind: str, module: str) -> MissingDependencyException:
    """dlt.dataset.utils.get_destination_clients: the client's import fails, dlt names its extra."""
    try:
        try:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        except ModuleNotFoundError:
            raise MissingDependencyException(
                f"{kind} destination",
                [f"dlt[{kind}]"],
                "Dependencies for specific destinations are available as extras of dlt",
            ) from None
    except MissingDependencyException as exc:
        return exc


@pytest.mark.parametrize(
    ("kind", "module", "command"),
    [
        ("postgres", "psycopg2", 'pip install "feishu-task-followers[postgres]"'),  # our extra
        ("bigquery", "google.cloud", 'pip install "dlt[bigquery]"'),  # dlt's, where we have none
        ("snowflake", "snowflake", 'pip install "dlt[snowflake]"'),
    ],
)
def test_a_missing_destination_package_is_one_line_with_the_pip_command(
    kind: str, module: str, command: str
) -> None:
    line = explain_failure(raised_as_dlt_does(kind, module))
    missing = f"(no module named {module!r})"
    assert line == f"the {kind} destination needs packages that are not installed {missing}: {command}"


def test_install_command_keeps_what_is_not_a_dlt_extra() -> None:
    assert install_command(["dlt[postgres]", "pyarrow"]) == (
        'pip install "feishu-task-followers[postgres]" "pyarrow"'
    )


def trace(*sections: str, key: str) -> LookupTrace:
    return LookupTrace("Environment Variables", list(sections), key, None)


def test_missing_destination_credentials_name_the_keys_people_write() -> None:
    """dlt looks under the pipeline's name first; the line names the plain destination keys."""
    traces = {
        "host": [
            trace("feishu_followers", "destination", "clickhouse", "credentials", key="FEISHU_FOLLOWERS__X"),
            trace(
                "destination", "clickhouse", "credentials", key="DESTINATION__CLICKHOUSE__CREDENTIALS__HOST"
            ),
            trace("credentials", key="CREDENTIALS__HOST"),
        ]
    }
    line = missing_config_line(ConfigFieldMissingException(ConnectionStringCredentials(), traces))
    assert line == (
        "missing configuration: set DESTINATION__CLICKHOUSE__CREDENTIALS__HOST (env vars), "
        "or host under [destination.clickhouse.credentials] in .dlt/secrets.toml"
    )
    assert "example" not in line  # a pip-installed user has no example file


@pytest.mark.parametrize(
    "url", ["127.0.0.1:45811", "open.feishu.cn", "ftp://open.feishu.cn", "https://", "http//x", ""]
)
def test_a_base_url_without_scheme_or_host_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="expected an http:// or https:// URL"):
        check_base_url(url)


@pytest.mark.parametrize(
    "url", [None, "https://open.feishu.cn", "http://127.0.0.1:45811/", "https://x.y/api"]
)
def test_a_usable_base_url_passes(url: str | None) -> None:
    check_base_url(url)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["run", "--all-tasklsts"],
            "feishu-followers run: error: unrecognized argument --all-tasklsts; "
            "did you mean --all-tasklists? (see feishu-followers run --help)",
        ),
        (
            ["run", "--max-requests", "abc"],
            "feishu-followers run: error: --max-requests / sources.feishu_tasks.max_requests "
            "(SOURCES__FEISHU_TASKS__MAX_REQUESTS): cannot use 'abc'; expected a whole number of requests "
            "(see feishu-followers run --help)",
        ),
        (
            ["run", "--stale-after", "soon"],
            "feishu-followers run: error: --stale-after / sources.feishu_tasks.stale_after "
            "(SOURCES__FEISHU_TASKS__STALE_AFTER): cannot use 'soon'; expected a duration such as 90s, 15m, "
            "6h or 7d (see feishu-followers run --help)",
        ),
        (
            ["demo", "--task", "x"],  # an abbreviation argparse accepts, a value it does not
            "feishu-followers demo: error: argument --tasks: invalid int value: 'x' "
            "(see feishu-followers demo --help)",
        ),
        (
            ["demo", "--sed", "3"],
            "feishu-followers demo: error: unrecognized argument --sed; did you mean --seed? "
            "(see feishu-followers demo --help)",
        ),
        (
            ["rnu"],
            "feishu-followers: error: unknown command 'rnu'; did you mean run? (see feishu-followers --help)",
        ),
        (
            [],
            "feishu-followers: error: choose a command: run, listen, follow, subscribe, simulate or demo"
            " (see feishu-followers --help)",
        ),
        (
            ["run", "--zzz"],
            "feishu-followers run: error: unrecognized argument --zzz (see feishu-followers run --help)",
        ),
    ],
)
def test_a_usage_error_is_one_line_of_the_subcommand(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_arguments(argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == line + "\n"


def test_flag_values_arrive_typed_like_config_values() -> None:
    args = parse_arguments(
        ["run", "--max-requests", "45000", "--stale-after", "6h", "--tasklist-completed", "false"]
    )
    assert (args.max_requests, args.stale_after.total_seconds(), args.tasklist_completed) == (
        45000,
        21600,
        False,
    )
    assert parse_arguments(["run", "--max-rps", "0"]).max_rps == 0  # 0 switches the ceiling off


def test_run_help_says_where_credentials_go_and_every_demo_option_is_described(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_arguments(["run", "--help"])
    run_help = capsys.readouterr().out
    assert "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID" in run_help
    assert "[sources.feishu_tasks.credentials]" in run_help and ".dlt/secrets.toml" in run_help
    _, subcommands = build_parser()
    for command in ("run", "demo", "follow", "subscribe"):
        for action in subcommands[command]._actions:
            assert action.help, (command, action.option_strings)


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_the_readme_shows_the_example_pipeline_as_it_is() -> None:
    """The README's dlt snippet is the example file's code, line for line, in order."""
    readme = (REPO / "README.md").read_text()
    snippet = next(block for block in python_blocks(readme) if "def load_followers" in block)
    example = iter((REPO / "pipelines" / "feishu_tasks_pipeline.py").read_text().splitlines())
    for line in filter(None, snippet.splitlines()):
        assert any(line == candidate for candidate in example), f"not in the example, or not in order: {line}"
