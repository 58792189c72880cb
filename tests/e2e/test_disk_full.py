"""A full disk during the load: one clear line, and the next run (with space again) is exact.

The disk really fills up: the DuckDB file is copied onto a small tmpfs mounted in a private
mount namespace (``unshare``, no root needed where user namespaces are allowed), the run loads
into it and fails, and the file is copied back out for the next run.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feishu_simulator import World

from .conftest import DATASET, Loader, cli, sim_env, truth
from .test_history import assert_open_intervals_match_current

MARGIN_BYTES = 64 * 1024  # room left beside the database: less than the next load needs


def can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || exit 1"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_tmpfs = pytest.mark.skipif(
    not can_mount_tmpfs(), reason="needs `unshare -rm` and tmpfs in a user namespace (util-linux, Linux)"
)


@needs_tmpfs
def test_disk_full_during_the_load_is_one_line_and_the_next_run_is_exact(
    loader: Loader, world: World, tmp_path: Path
) -> None:
    """The DuckDB file stays at its path (a pending load belongs to its file): a small tmpfs is
    mounted over its folder, in a private mount namespace, for the failing run only."""
    folder = tmp_path / "db"
    folder.mkdir()
    loader.duckdb = folder / "followers.duckdb"
    ids = world.task_ids()
    loader.run(ids)
    for task_id in ids[:20]:
        world.add_follower(task_id)
    saved = tmp_path / "saved"
    saved.mkdir()
    size = loader.duckdb.stat().st_size + MARGIN_BYTES
    args = ["run", "--duckdb", str(loader.duckdb), "--pipelines-dir", str(loader.pipelines_dir)]
    args += [arg for task_id in ids for arg in ("--task-id", task_id)]
    script = "\n".join(
        [
            f"cp {loader.duckdb} {saved}/",
            f"mount -t tmpfs -o size={size} tmpfs {folder}",
            f"cp {saved}/{loader.duckdb.name} {folder}/",
            f"{shlex.join([sys.executable, '-m', 'feishu_followers.cli', *args])}; rc=$?",
            f"cp {folder}/{loader.duckdb.name}* {saved}/",  # out of the tmpfs, which goes with the namespace
            "exit $rc",
        ]
    )
    full = cli([], tmp_path, sim_env(loader.sim), command=["unshare", "-rm", "sh", "-c", script])
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert lines[0].startswith("feishu-followers: error: the disk is full: ")
    assert "No space left on device" in lines[0]
    for path in saved.iterdir():
        shutil.copy(path, folder / path.name)

    result = loader.run(ids)  # space again: the next plain run
    assert result.completed_pending
    assert loader.followers() == truth(world, ids)
    assert loader.query(f"select count(*) from {DATASET}.task_fetch_status") == [(len(ids),)]
    assert_open_intervals_match_current(loader)


@needs_tmpfs
@pytest.mark.parametrize("read_only", ["duckdb_folder", "pipelines_dir"])
def test_a_read_only_folder_is_one_line_naming_it(
    loader: Loader, world: World, tmp_path: Path, read_only: str
) -> None:
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    duckdb = frozen / "followers.duckdb" if read_only == "duckdb_folder" else loader.duckdb
    pipelines = frozen / "pipelines" if read_only == "pipelines_dir" else loader.pipelines_dir
    args = [
        "run",
        "--duckdb",
        str(duckdb),
        "--pipelines-dir",
        str(pipelines),
        "--task-id",
        world.task_ids()[0],
    ]
    command = shlex.join([sys.executable, "-m", "feishu_followers.cli", *args])
    script = f"mount --bind -o ro {frozen} {frozen} && {command}"
    done = cli([], tmp_path, sim_env(loader.sim), command=["unshare", "-rm", "sh", "-c", script])
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    what = "the DuckDB file's folder" if read_only == "duckdb_folder" else "the pipelines folder"
    assert lines[0].startswith(f"feishu-followers: error: cannot write {what} {frozen}")
    assert lines[0].endswith("Read-only file system")
