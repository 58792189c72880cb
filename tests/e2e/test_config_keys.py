"""Every parameter of the source works the same from the CLI's flag, ``.dlt/config.toml`` and env vars.

The list is the source's signature, so a new parameter cannot be forgotten: each needs a value
that the source refuses, and that value must stop a CLI run whichever way it is given (a run
that passed its own default to the source would ignore the config value, and load).
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import pytest

from feishu_followers.cli import main, parse_arguments
from feishu_simulator import World
from feishu_tasks import feishu_tasks

from .conftest import APP_ID, APP_SECRET, DATASET, Loader, cli, sim_env, truth

TASK = "0d38e26e-190a-49e9-93a2-35067763ed1f"
UNREACHABLE = "http://127.0.0.1:9"  # never asked: a refused value stops the run before any request

# parameter → (a value the source refuses, as an env var holds it; as TOML writes it; the flag and
# its value, for a parameter with a flag that takes a value). Credentials have their own tests.
REFUSED: dict[str, tuple[str, str, list[str] | None]] = {
    "task_ids": ("5", "5", None),  # a bad id given as a flag is data (invalid_task), not an error
    "tasklists": ("5", "5", None),
    "all_tasklists": ("maybe", '"maybe"', None),
    "tasklist_completed": ("maybe", '"maybe"', ["--tasklist-completed", "maybe"]),
    "discover": ("maybe", '"maybe"', None),
    "discover_lookback_seconds": ("-1", "-1", ["--discover-lookback", "-1"]),
    "full_refresh": ("maybe", '"maybe"', None),
    "stale_after_seconds": ("-5", "-5", ["--stale-after", "-5"]),
    "max_requests": ("-1", "-1", ["--max-requests", "-1"]),
    "base_url": ("open.feishu.cn", '"open.feishu.cn"', ["--base-url", "open.feishu.cn"]),
    "user_id_type": ("email", '"email"', ["--user-id-type", "email"]),
    "followers_api": ("v3", '"v3"', ["--followers-api", "v3"]),
    "concurrency": ("5000", "5000", ["--concurrency", "5000"]),
    "max_rps": ("-1", "-1", ["--max-rps", "-1"]),
    "max_rpm": ("-1", "-1", ["--max-rpm", "-1"]),
    "endpoint_limits": ('{"no_such_endpoint": [1, 2]}', "{no_such_endpoint = [1, 2]}", None),
    "timeout_seconds": ("0", "0", None),
    "max_pages_per_task": ("0", "0", None),
    "max_seconds_per_task": ("0", "0", None),
    "max_listing_pages": ("0", "0", None),
    "max_listing_seconds": ("0", "0", None),
    "max_attempts": ("0", "0", None),
    "backoff_base_seconds": ("-1", "-1", None),
    "journal": (".", '"."', ["--changed", "--journal", "."]),  # a folder, not the journal's file
    "max_rate_limited_seconds": ("0", "0", ["--max-rate-limited", "0"]),
    "tenant_key": ("a b", '"a b"', ["--tenant", "a b"]),
    "ticket_journal": (".", '"."', None),  # a folder, not the journal's file
}
PARAMETERS = [name for name in inspect.signature(feishu_tasks).parameters if name != "credentials"]


def test_the_walk_covers_every_parameter_of_the_source() -> None:
    assert sorted(REFUSED) == sorted(PARAMETERS)


def run_args(tmp_path: Path, name: str = "") -> list[str]:
    """A run of one task (none named for ``task_ids``: a flag would win over the config value)."""
    task = [] if name == "task_ids" else ["--task-id", TASK]
    return ["run", *task, "--duckdb", str(tmp_path / "f.duckdb"), "--pipelines-dir", str(tmp_path / "p")]


def assert_refused(returncode: int, stderr: str, expected_code: int, name: str) -> None:
    lines = stderr.strip().splitlines()
    assert returncode == expected_code, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert name in lines[0], lines[0]  # the key (or, for a flag, the flag)


@pytest.mark.parametrize("name", PARAMETERS)
def test_a_refused_value_from_an_env_var_stops_the_cli_naming_it(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the journal's "." is this folder
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "CRITICAL")  # main sets it; restored after the test
    env = {
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID": APP_ID,
        "SOURCES__FEISHU_TASKS__BASE_URL": UNREACHABLE,
    }
    env["SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET"] = APP_SECRET
    env[f"SOURCES__FEISHU_TASKS__{name.upper()}"] = REFUSED[name][0]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with warnings.catch_warnings():
        code = main(run_args(tmp_path, name))
    assert_refused(code, capsys.readouterr().err, 1, name)
    assert not list(tmp_path.iterdir()), "a refused run created something"


@pytest.mark.parametrize("name", PARAMETERS)
def test_a_refused_value_from_config_toml_stops_the_cli_naming_it(name: str, tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        f'[sources.feishu_tasks]\nbase_url = "{UNREACHABLE}"\n{name} = {REFUSED[name][1]}\n'
        if name != "base_url"
        else f"[sources.feishu_tasks]\nbase_url = {REFUSED[name][1]}\n"
    )
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        f'[sources.feishu_tasks.credentials]\napp_id = "{APP_ID}"\napp_secret = "{APP_SECRET}"\n'
    )
    done = cli(run_args(tmp_path, name), tmp_path)
    assert_refused(done.returncode, done.stderr, 1, name)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".dlt"], "a refused run created something"


@pytest.mark.parametrize("name", [name for name in PARAMETERS if REFUSED[name][2]])
def test_a_refused_value_from_a_flag_is_a_usage_error_naming_it(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "CRITICAL")
    monkeypatch.setenv("SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID", APP_ID)
    monkeypatch.setenv("SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET", APP_SECRET)
    argv = [*run_args(tmp_path), *(REFUSED[name][2] or [])]
    with warnings.catch_warnings():
        try:
            parse_arguments(argv)  # argparse checks the value
            code = main(argv)  # or the source does, as for a config value
            expected = 1
        except SystemExit as exc:
            code, expected = int(exc.code or 0), 2
    flag = next(arg for arg in reversed(REFUSED[name][2] or []) if arg.startswith("--"))
    assert_refused(code, capsys.readouterr().err, expected, flag if expected == 2 else name)
    if name not in ("base_url", "journal", "tenant_key"):  # checked by the source, as from config (exit 1)
        assert expected == 2
    assert not list(tmp_path.iterdir()), "a refused run created something"


# ---------------------------------------------------------------- what the issue found ignored
def discover_args(loader: Loader) -> list[str]:
    return ["run", "--discover", *loader.cli_args()]


@pytest.mark.parametrize("where", ["env", "config.toml"])
def test_full_refresh_from_config_lists_every_task_again(
    loader: Loader, world: World, tmp_path: Path, where: str
) -> None:
    ids = world.task_ids()
    # a listing starts an hour before the newest update seen: the generated tasks are older
    env = sim_env(loader.sim, SOURCES__FEISHU_TASKS__DISCOVER_LOOKBACK_SECONDS="3600")
    done = cli(discover_args(loader), tmp_path, env)
    assert done.returncode == 0, done.stderr
    world.add_follower(ids[0])  # an old task: an incremental listing does not reach it
    if where == "env":
        env["SOURCES__FEISHU_TASKS__FULL_REFRESH"] = "true"
    else:
        (tmp_path / ".dlt").mkdir()
        (tmp_path / ".dlt" / "config.toml").write_text("[sources.feishu_tasks]\nfull_refresh = true\n")
    done = cli(discover_args(loader), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert loader.followers() == truth(world, ids)


@pytest.mark.parametrize("where", ["env", "config.toml"])
def test_stale_after_seconds_from_config_sweeps_known_tasks(
    loader: Loader, world: World, tmp_path: Path, where: str
) -> None:
    ids = world.task_ids()[:6]
    given = [arg for task in ids for arg in ("--task-id", task)]
    done = cli(["run", *loader.cli_args(), *given], tmp_path, sim_env(loader.sim))
    assert done.returncode == 0, done.stderr
    world.add_follower(ids[0])
    env = sim_env(loader.sim)
    if where == "env":
        env["SOURCES__FEISHU_TASKS__STALE_AFTER_SECONDS"] = "0"
    else:
        (tmp_path / ".dlt").mkdir()
        (tmp_path / ".dlt" / "config.toml").write_text("[sources.feishu_tasks]\nstale_after_seconds = 0\n")
    done = cli(["run", *loader.cli_args()], tmp_path, env)  # no task named: the sweep alone
    assert done.returncode == 0, done.stderr
    assert loader.followers() == truth(world, ids)
    assert loader.query(f"select count(*) from {DATASET}.task_fetch_status") == [(6,)]


@pytest.mark.parametrize("where", ["env", "secrets.toml"])
@pytest.mark.parametrize(
    "url",
    ["postgresql://loader:pw-9f2c@localhost:99999x/db", "postgresql://loader:pw-9f2c@db.internal:port/db"],
)
def test_a_malformed_postgres_url_is_a_config_error_naming_the_setting(
    tmp_path: Path, url: str, where: str
) -> None:
    """Issue 21, 6: a bad port was "unexpected InvalidNativeValue … (a bug: please report it)"."""
    (tmp_path / ".dlt").mkdir()
    secrets = f'[sources.feishu_tasks.credentials]\napp_id = "{APP_ID}"\napp_secret = "{APP_SECRET}"\n'
    env = {"SOURCES__FEISHU_TASKS__BASE_URL": UNREACHABLE}
    if where == "env":
        env["DESTINATION__POSTGRES__CREDENTIALS"] = url
    else:
        secrets += f'\n[destination.postgres]\ncredentials = "{url}"\n'
    (tmp_path / ".dlt" / "secrets.toml").write_text(secrets)
    args = ["run", "--destination", "postgres", "--task-id", TASK, "--pipelines-dir", str(tmp_path / "p")]
    done = cli(args, tmp_path, env)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "feishu-followers: error: DESTINATION__POSTGRES__CREDENTIALS / credentials under "
        "[destination.postgres] in .dlt/secrets.toml: cannot parse"
    ), done.stderr
    assert "pw-9f2c" not in done.stderr + done.stdout and "bug" not in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == [".dlt"], "a refused run created something"
