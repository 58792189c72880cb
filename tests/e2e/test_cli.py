"""The command line as a user meets it: exit codes, one-line fatal errors, no leaked secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from feishu_followers.run import run
from feishu_simulator import Simulator, World
from feishu_simulator.faults import PageFault
from feishu_tasks.errors import FatalError

from .conftest import (
    APP_ID,
    APP_SECRET,
    DATASET,
    USER_TOKEN,
    Loader,
    cli,
    on_every_destination,
    sim_env,
    truth,
)


def run_args(tmp_path: Path) -> list[str]:
    return ["run", "--duckdb", str(tmp_path / "out.duckdb"), "--pipelines-dir", str(tmp_path / "p")]


def test_cli_run_with_file_and_query_inputs_and_dlt_info(
    sim: Simulator, world: World, tmp_path: Path
) -> None:
    ids = world.task_ids()
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# tasks to load\n\n" + "\n".join(ids[:10]) + f"\n{ids[10]}  # trailing comment\n")
    done = cli(
        [*run_args(tmp_path), "--task-ids-file", str(ids_file), "--task-id", ids[11]], tmp_path, sim_env(sim)
    )
    assert done.returncode == 0, done.stderr
    assert "tasks: 12 (ok 12" in done.stdout
    assert "followers loaded:" in done.stdout and "requests:" in done.stdout
    # another pipeline's table can feed the ids
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        con.execute("create table wanted as select unnest(?::varchar[]) as id", [ids[12:20]])
    done = cli(
        [*run_args(tmp_path), "--task-ids-query", "select id from wanted", "--quiet"], tmp_path, sim_env(sim)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("feishu-followers: loaded 8 task(s) (ok 8,")  # --quiet: one line
    assert done.stdout.count("\n") == 1
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        loaded = {r[0] for r in con.execute(f"select task_id from {DATASET}.task_fetch_status").fetchall()}
    assert loaded == set(ids[:20])
    dlt_command = Path(sys.executable).parent / "dlt"  # dlt's console script, beside this Python
    shown = subprocess.run(
        [str(dlt_command), "pipeline", "--pipelines-dir", str(tmp_path / "p"), "feishu_followers", "info"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    tables = ("task_followers", "task_followers__id_list", "task_fetch_status")
    assert "feishu_followers" in shown.stdout and all(table in shown.stdout for table in tables), shown.stdout


@on_every_destination
def test_task_ids_query_reads_the_destination_and_changes_nothing(loader: Loader, world: World) -> None:
    ids = world.task_ids()
    loader.execute("create schema crm")  # another pipeline's table, beside our dataset
    loader.execute("create table crm.wanted (id varchar)")
    for task_id in ids[:6]:
        loader.execute("insert into crm.wanted values (%s)", task_id)
    options = loader.options()
    options.task_ids_query = f"delete from crm.wanted where id <> '{ids[0]}' returning id"
    run(options)
    assert set(loader.statuses()) == set(ids[1:6])
    assert loader.query("select count(*) from crm.wanted") == [(6,)]  # the query ran, rolled back
    options.task_ids_query = "select id from crm.no_such_table"
    with pytest.raises(FatalError, match="--task-ids-query failed: .*no_such_table"):
        run(options)


def test_options_from_dlt_config_file(sim: Simulator, world: World, tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        f'[sources.feishu_tasks]\nbase_url = "{sim.base_url}"\nduckdb = "from_config.duckdb"\n'
        f'dataset = "configured"\nuser_id_type = "union_id"\npipelines_dir = "{tmp_path / "p"}"\n'
    )
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        f'[sources.feishu_tasks]\napp_id = "{APP_ID}"\napp_secret = "{APP_SECRET}"\n'
    )
    task = world.task_ids()[2]
    done = cli(["run", "--task-id", task], tmp_path)
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(tmp_path / "from_config.duckdb"), read_only=True) as con:
        got = {r[0] for r in con.execute("select follower_id from configured.task_followers").fetchall()}
    assert got == set(world.followers(task, "union_id"))


@pytest.mark.postgres
def test_destination_and_its_credentials_from_dlt_config_files(
    sim: Simulator, world: World, tmp_path: Path, postgres_url: str
) -> None:
    """As every dlt user configures it: the run option in [sources.feishu_tasks], the credentials
    in [destination.postgres] of secrets.toml; nothing on the command line but the task."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        f'[sources.feishu_tasks]\nbase_url = "{sim.base_url}"\ndestination = "postgres"\n'
        f'pipelines_dir = "{tmp_path / "p"}"\n'
    )
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        f'[sources.feishu_tasks]\napp_id = "{APP_ID}"\napp_secret = "{APP_SECRET}"\n\n'
        f'[destination.postgres]\ncredentials = "{postgres_url}"\n'
    )
    tasks = world.task_ids()[:3]
    done = cli(["run", *sum((["--task-id", t] for t in tasks), [])], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "loaded into the postgres destination" in done.stdout
    assert not list(tmp_path.glob("*.duckdb"))
    loaded = Loader(sim, tmp_path, "postgres", postgres_url)
    assert loaded.followers() == truth(world, tasks)
    assert loaded.query(f"select count(*) from {DATASET}.task_follower_history") == [
        (sum(len(world.followers(t)) for t in tasks),)
    ]


def test_a_destination_without_sql_gets_the_tables_and_one_note(
    sim: Simulator, world: World, tmp_path: Path
) -> None:
    """filesystem: dlt loads the files; history and views need SQL, so they are skipped, said once."""
    env = {**sim_env(sim), "DESTINATION__FILESYSTEM__BUCKET_URL": str(tmp_path / "lake")}
    tasks = world.task_ids()[:4]
    args = ["run", "--destination", "filesystem", "--pipelines-dir", str(tmp_path / "p")]
    done = cli([*args, *sum((["--task-id", t] for t in tasks), [])], tmp_path, env)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "note:" in line]
    assert notes == [
        "feishu-followers: note: the filesystem destination gets the loaded tables only; "
        "follow history and views are built on duckdb, motherduck, postgres"
    ]
    assert "tasks: 4 (ok 4" in done.stdout
    assert list((tmp_path / "lake" / DATASET / "task_fetch_status").glob("*.parquet"))
    assert not (tmp_path / "lake" / DATASET / "task_follower_history").exists()


@pytest.mark.parametrize(
    "case",
    [
        "bad_credentials",
        "wrong_token_type",
        "bad_user_token",
        "no_ids",
        "unwritable",
        "not_json",
        "no_credentials",
        "undecodable_ids_file",
        "unknown_destination",
        "no_destination_credentials",
        "unreachable_destination",
    ],
)
def test_fatal_conditions_stop_with_one_line(sim: Simulator, world: World, tmp_path: Path, case: str) -> None:
    env = sim_env(sim, secret="wrong-secret-3141" if case == "bad_credentials" else APP_SECRET)
    args = [*run_args(tmp_path), "--task-id", world.task_ids()[0]]
    if case == "wrong_token_type":
        sim.faults.tenant_token_prefix = "a-"
    elif case == "bad_user_token":
        env = {
            "SOURCES__FEISHU_TASKS__USER_ACCESS_TOKEN": "u-expired-or-revoked",
            "SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url,
        }
    elif case == "no_credentials":
        env = {"SOURCES__FEISHU_TASKS__BASE_URL": sim.base_url}
    elif case == "no_ids":
        args = run_args(tmp_path)
    elif case == "unwritable":
        (tmp_path / "a_file").write_text("x")
        args = ["run", "--duckdb", str(tmp_path / "a_file" / "out.duckdb"), "--task-id", world.task_ids()[0]]
    elif case == "not_json":
        env["SOURCES__FEISHU_TASKS__BASE_URL"] = sim.base_url + "/wrong-prefix"
        env["SOURCES__FEISHU_TASKS__BACKOFF_BASE_SECONDS"] = "0.01"  # the token request is retried first
    elif case == "undecodable_ids_file":
        (tmp_path / "ids.txt").write_bytes(f"# tâche\n{world.task_ids()[0]}\n".encode("latin-1"))
        args = [*run_args(tmp_path), "--task-ids-file", str(tmp_path / "ids.txt")]
    elif case.endswith("destination") or case == "no_destination_credentials":
        name = "nope" if case == "unknown_destination" else "postgres"
        args = ["run", "--destination", name, "--pipelines-dir", str(tmp_path / "p"), "--task-id", "x"]
        if case == "unreachable_destination":  # nothing listens on port 1 of loopback
            env["DESTINATION__POSTGRES__CREDENTIALS"] = "postgresql://u:secret-pw-77@127.0.0.1:1/db"
    done = cli(args, tmp_path, env)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("feishu-followers: error: ")
    expected = {
        "bad_credentials": "); check SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID and "
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET",
        "wrong_token_type": "neither a user nor a tenant token",
        "bad_user_token": "supply a fresh one in SOURCES__FEISHU_TASKS__CREDENTIALS__USER_ACCESS_TOKEN",
        "no_ids": "no task ids given",
        "unwritable": "cannot write the DuckDB file",
        "not_json": "without a JSON body",
        "no_credentials": "set SOURCES__FEISHU_TASKS__CREDENTIALS__APP_ID and "
        "SOURCES__FEISHU_TASKS__CREDENTIALS__APP_SECRET or "
        "SOURCES__FEISHU_TASKS__CREDENTIALS__USER_ACCESS_TOKEN",
        "undecodable_ids_file": f"{tmp_path / 'ids.txt'}: line 1 is not valid UTF-8",
        "unknown_destination": "unknown destination 'nope'",
        "no_destination_credentials": "missing configuration of the postgres destination: credentials",
        "unreachable_destination": "cannot write to the postgres destination: connection to server",
    }[case]
    assert expected in lines[0]
    assert "wrong-secret-3141" not in done.stderr + done.stdout
    assert APP_SECRET not in done.stderr + done.stdout
    assert "secret-pw-77" not in done.stderr + done.stdout
    if "destination" in case:  # stopped before creating anything
        assert not list(tmp_path.glob("*.duckdb"))


def test_hostile_answers_end_in_a_summary_not_a_traceback(
    sim: Simulator, world: World, tmp_path: Path
) -> None:
    """Random bad answers everywhere, a task that pages forever and one with a bad follower id."""
    ids = world.task_ids()
    sim.faults.bad_answer_fraction = 0.2
    sim.faults.page_faults = {ids[-1]: PageFault("endless"), ids[-2]: PageFault("id_bool")}
    settings = {"MAX_PAGES_PER_TASK": "5", "MAX_ATTEMPTS": "10", "BACKOFF_BASE_SECONDS": "0.01"}
    env = {**sim_env(sim), **{f"SOURCES__FEISHU_TASKS__{key}": value for key, value in settings.items()}}
    done = cli([*run_args(tmp_path), *sum((["--task-id", t] for t in ids), [])], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert f"tasks: {len(ids)} (ok {len(ids) - 2}, invalid_task 0, no_permission 0, failed 2)" in done.stdout


def test_fatal_error_keeps_previously_loaded_data(loader: Loader, world: World) -> None:
    ids = world.task_ids()[:8]
    loader.run(ids)
    before = loader.followers()
    options = loader.options(ids, app_secret="not-the-secret")
    with pytest.raises(FatalError):
        run(options)
    assert loader.followers() == before == truth(world, ids)


def test_no_secret_or_token_leaks(sim: Simulator, world: World, tmp_path: Path) -> None:
    """Neither the app secret nor any issued token appears in output, dlt's files or the tables."""
    sim.faults.error_500_fraction = 0.1
    ids = world.task_ids()[:10] + ["00000000-0000-4000-8000-000000000000"]
    args = [*run_args(tmp_path), *sum((["--task-id", t] for t in ids), [])]
    done = cli(args, tmp_path, sim_env(sim))
    assert done.returncode == 0, done.stderr
    sim.expire_tokens()  # a failing run must not leak either: the refresh is refused next
    failed = cli(args, tmp_path, sim_env(sim, secret=APP_SECRET + "-wrong"))
    assert failed.returncode == 1
    issued = sim.tokens.issued_tokens()
    assert issued
    haystack = done.stdout + done.stderr + failed.stdout + failed.stderr
    for path in (tmp_path / "p").rglob("*"):  # dlt's state, schemas, trace and load packages
        if path.is_file():
            haystack += path.read_bytes().decode("utf-8", "replace")
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        for (table,) in con.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
        ).fetchall():
            haystack += str(con.execute(f"select * from {table}").fetchall())
    assert APP_SECRET not in haystack
    for token in issued:
        assert token not in haystack
    assert USER_TOKEN not in haystack


def test_demo_command_builds_the_demo_database(tmp_path: Path) -> None:
    args = ["demo", "--duckdb", str(tmp_path / "demo.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    done = cli(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tasks: 300 (ok 294, invalid_task 3, no_permission 2, failed 1)" in done.stdout
    assert "Task lists by outcome:" in done.stdout
    follow_line = done.stdout.rsplit("\n\n", 1)[1]  # the follow phase: pushed changes, loaded in seconds
    assert follow_line.startswith("Follow (feishu-followers follow): the simulator pushed 5 follower changes")
    # every top task with its summary, from the view (the v2-only ones from tasklist_tasks)
    assert all(len(line.split(maxsplit=2)) == 3 for line in top_tasks(done.stdout))
    with duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True) as con:
        statuses = dict(
            con.execute(f"select status, count(*) from {DATASET}.task_fetch_status group by 1").fetchall()
        )
        followers = con.execute(f"select count(*) from {DATASET}.task_followers").fetchone()[0]
    assert set(statuses) == {"ok", "invalid_task", "no_permission", "failed"}
    assert followers > 1000

    again = cli(args, tmp_path)  # the second run fetches fewer (discovery is incremental)
    assert again.returncode == 0, again.stderr
    summary, everything = again.stdout.split("\n\n", 1)
    assert summary.startswith(f"feishu-followers: this run loaded into {tmp_path / 'demo.duckdb'}")
    assert everything.startswith(f"All that {tmp_path / 'demo.duckdb'} holds now (this run and any before")
    this_run = int(summary.split("  tasks: ", 1)[1].split()[0])
    outcomes = everything.split("Tasks by outcome:\n", 1)[1].split("Most-followed")[0]
    in_the_file = sum(int(line.split()[1]) for line in outcomes.splitlines())
    assert this_run < in_the_file == sum(statuses.values())


def top_tasks(stdout: str) -> list[str]:
    """The demo's most-followed tasks: ``  171  <task id>  <summary>`` lines."""
    block = stdout.split("Most-followed tasks:\n", 1)[1].split("Most active followers:")[0]
    return block.splitlines()


def test_simulate_command_serves_the_api(tmp_path: Path) -> None:
    import httpx

    env = dict(os.environ)
    server = subprocess.Popen(
        [sys.executable, "-m", "feishu_followers.cli", "simulate", "--tasks", "5", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        line = server.stdout.readline()
        base_url = next(word for word in line.split() if word.startswith("http://127.0.0.1:"))
        answer = httpx.post(
            f"{base_url}/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": "cli_demo", "app_secret": "demo-secret"},
        ).json()
        assert answer["code"] == 0 and answer["tenant_access_token"].startswith("t-")
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["demo", "--help"]])
def test_help_imports_neither_dlt_nor_pyarrow(args: list[str], tmp_path: Path) -> None:
    """``--help`` answers at once: the CLI imports what a command needs when it runs it (dlt and
    pyarrow took ~0.7 s of a 1 s ``--help``; bench/run_bench.py --case 7 times it)."""
    probe = (
        "import sys\n"
        "from feishu_followers.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "heavy = sorted(loaded & {'dlt', 'pyarrow', 'duckdb', 'httpx'})\n"
        "print('heavy:', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert "usage: feishu-followers" in done.stdout
    assert "heavy: []" in done.stderr, done.stderr
