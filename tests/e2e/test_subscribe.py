"""``feishu-followers subscribe`` as a user runs it, against the simulator's v2 task subscription."""

from __future__ import annotations

from pathlib import Path

from feishu_simulator import Simulator

from .conftest import USER_TOKEN, cli, sim_env

APP_LINE = "app: {} to task events; they cover the tasks the app is responsible for"
USER_LINE = "user: {} to task events; they cover the tasks the user created, is responsible for or follows"


def test_subscribing_twice_says_what_each_identity_covers_and_is_harmless(
    sim: Simulator, tmp_path: Path
) -> None:
    env = sim_env(sim, SOURCES__FEISHU_TASKS__CREDENTIALS__USER_ACCESS_TOKEN=USER_TOKEN)
    first = cli(["subscribe"], tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [APP_LINE.format("subscribed"), USER_LINE.format("subscribed")]
    assert sim.events.coverage.identities() == ["app", f"user:{sim.world.token_user(USER_TOKEN)}"]
    second = cli(["subscribe"], tmp_path, env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        APP_LINE.format("already subscribed"),
        USER_LINE.format("already subscribed"),
    ]
    assert USER_TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr


def test_the_app_alone_subscribes_the_app(sim: Simulator, tmp_path: Path) -> None:
    done = cli(["subscribe"], tmp_path, sim_env(sim))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [APP_LINE.format("subscribed")]
    assert sim.events.coverage.identities() == ["app"]


def test_a_wrong_secret_is_one_line_and_exit_1(sim: Simulator, tmp_path: Path) -> None:
    done = cli(["subscribe"], tmp_path, sim_env(sim, secret="wrong-secret-0000"))
    assert done.returncode == 1
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("feishu-followers: error: ") and "wrong-secret-0000" not in done.stderr
    assert sim.events.coverage.identities() == []


def test_without_credentials_it_says_which_to_set(tmp_path: Path) -> None:
    done = cli(["subscribe", "--base-url", "http://127.0.0.1:9"], tmp_path)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID" in done.stderr
