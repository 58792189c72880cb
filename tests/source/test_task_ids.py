"""Task-ids files as editors save them: BOMs, UTF-16, and files that are not text we can read."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from feishu_tasks.errors import ConfigError
from feishu_tasks.task_ids import TaskIdsFile, normalize_task_id

IDS = ["0d38e26e-190a-49e9-93a2-35067763ed1f", "1e38e26e-190a-49e9-93a2-35067763ed1f"]
TEXT = f"# tasks\r\n{IDS[0]}\r\n\r\n{IDS[1]}  # trailing comment\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + TEXT.encode("utf-8"),
        codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
        codecs.BOM_UTF32_LE + TEXT.encode("utf-32-le"),
    ],
    ids=["utf8", "utf8_bom", "utf16_le", "utf16_be", "utf32_le"],
)
def test_encodings_with_a_bom_read_the_same_ids(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(raw)
    ids = list(TaskIdsFile(path))
    assert ids == IDS
    assert all(normalize_task_id(i) for i in ids)  # the first id is not turned into invalid_task


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (f"{IDS[0]}\n# Zoë\n".encode("latin-1"), "line 2 is not valid UTF-8"),
        (f"{IDS[0]}\n{IDS[1]}\n\xff".encode("latin-1"), "line 3 is not valid UTF-8"),
        (codecs.BOM_UTF16_LE + "ab\ncd".encode("utf-16-le") + b"\x00", "line 2 is not valid UTF-16"),
        (f"{IDS[0]}\n".encode("utf-16-le"), "line 1 has NUL characters (UTF-16 without a BOM?)"),
    ],
    ids=["latin1", "latin1_last_line", "utf16_truncated", "utf16_without_bom"],
)
def test_unreadable_files_name_the_file_and_the_line(raw: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as caught:
        TaskIdsFile(path).count()
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)
