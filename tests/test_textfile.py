"""Replacing the metrics file on a real disk: whole or not at all, 0644, no temp file left,
the old file intact when the write fails; and what is refused rather than replaced."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dedupe.report.textfile import (
    MAX_BYTES,
    MetricsFileError,
    read_metrics_file,
    replace_metrics_file,
)

OLD, NEW = "venv_dedupe_errors 1\n", "venv_dedupe_errors 0\n" * 1000


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "textfile"
    made.mkdir()
    return made


def test_a_new_file_is_whole_0644_and_alone(folder: Path) -> None:
    path = folder / "scan.prom"
    old_umask = os.umask(0o077)
    try:
        replace_metrics_file(str(path), NEW)
    finally:
        os.umask(old_umask)
    assert path.read_text(encoding="utf-8") == NEW
    assert path.stat().st_mode & 0o7777 == 0o644
    assert sorted(os.listdir(folder)) == ["scan.prom"]


def test_an_old_file_is_replaced_by_rename_not_rewritten(folder: Path) -> None:
    """A scrape that opened the old file reads all of it: the new text is another inode
    put in place by rename, never the old one cut and written again."""
    path = folder / "scan.prom"
    path.write_text(OLD, encoding="utf-8")
    old_inode = path.stat().st_ino
    with path.open(encoding="utf-8") as reader:
        replace_metrics_file(str(path), NEW)
        assert reader.read() == OLD
    assert path.stat().st_ino != old_inode
    assert path.read_text(encoding="utf-8") == NEW
    assert sorted(os.listdir(folder)) == ["scan.prom"]


def test_a_missing_folder_is_said_and_nothing_is_made(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "scan.prom"
    with pytest.raises(MetricsFileError, match=r"folder .*no-such-folder.* does not exist"):
        replace_metrics_file(str(path), NEW)
    assert not path.parent.exists()


def test_a_read_only_folder_leaves_the_old_file_intact(
    folder: Path, read_only: Callable[[Path], None]
) -> None:
    path = folder / "scan.prom"
    path.write_text(OLD, encoding="utf-8")
    before = path.stat()
    read_only(folder)
    with pytest.raises(MetricsFileError, match="cannot write in the folder"):
        replace_metrics_file(str(path), NEW)
    assert path.read_text(encoding="utf-8") == OLD
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(os.listdir(folder)) == ["scan.prom"]


def test_temp_files_of_a_killed_run_go_those_of_a_live_one_stay(folder: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(finished.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            f".scan.prom.{dead}.abc123.tmp": False,  # the writer is gone: removed
            f".scan.prom.{live.pid}.def456.tmp": True,  # a run still writing: kept
            f".gc.prom.{dead}.abc123.tmp": True,  # another file's
            "scan.prom.bak": True,
            f".scan.prom.{dead}.tmp": True,  # not a name the writer makes
        }
        for name in names:
            (folder / name).write_text("x", encoding="utf-8")
        replace_metrics_file(str(folder / "scan.prom"), NEW)
        kept = {name for name, stays in names.items() if stays}
        assert set(os.listdir(folder)) == kept | {"scan.prom"}
    finally:
        live.kill()
        live.wait()


def test_reading_back_a_missing_file_is_none(folder: Path) -> None:
    assert read_metrics_file(str(folder / "scan.prom")) is None


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        pytest.param(lambda p: p.symlink_to(p.parent / "elsewhere"), "symlink", id="symlink"),
        pytest.param(lambda p: p.mkdir(), "not a regular file", id="folder"),
        pytest.param(lambda p: os.mkfifo(p), "not a regular file", id="fifo"),
        pytest.param(lambda p: p.write_bytes(b"\xff\n"), "not UTF-8", id="not-utf-8"),
        pytest.param(
            lambda p: p.write_bytes(b"#" * (MAX_BYTES + 1)), "larger than", id="too-large"
        ),
    ],
)
def test_what_is_not_a_metrics_file_is_refused(
    folder: Path, make: Callable[[Path], object], complaint: str
) -> None:
    path = folder / "scan.prom"
    make(path)
    with pytest.raises(MetricsFileError, match=complaint):
        read_metrics_file(str(path))
