"""Recorded files the scan must not open: a FIFO (it would block) and an unreadable file.

Missing files and folders in place of files are cases of the casebook (test_skips.py);
these two need a scan of their own, in a subprocess with a timeout or as a non-root user.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers import Venv, run_cli, snapshot, snapshot_diff

from dedupe import scan

RECORDED = "alpha/util.py"


def make_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def test_fifo_in_place_of_a_recorded_file_does_not_block(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the scan must lstat first.

    Run as a subprocess with a timeout so a regression fails instead of hanging the suite.
    """
    a, b = pair
    make_fifo(a.file(RECORDED))
    before = snapshot(venv_root)

    run = run_cli("scan", str(venv_root), "--store", str(store_dir), "--json", timeout=120)

    assert run.returncode == 0, run
    report = run.json()
    assert report["skipped"].get("not-regular-file") == 1, report["skipped"]
    assert snapshot_diff(before, snapshot(venv_root)) == []
    assert stat.S_ISFIFO(os.lstat(a.file(RECORDED)).st_mode)
    assert os.lstat(a.file("alpha/core.py")).st_ino == os.lstat(b.file("alpha/core.py")).st_ino


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_skipped(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b = pair
    unreadable = a.file(RECORDED)
    data, ino = unreadable.read_bytes(), os.lstat(unreadable).st_ino
    os.chmod(unreadable, 0)
    try:
        result = scan([venv_root], store=store_dir)
        assert stat.S_IMODE(os.lstat(unreadable).st_mode) == 0
    finally:
        os.chmod(unreadable, 0o644)  # so we can read it back, and pytest can clean up

    assert result.skipped.get("unreadable") == 1, result.skipped
    assert (os.lstat(unreadable).st_ino, os.lstat(unreadable).st_nlink) == (ino, 1)
    assert unreadable.read_bytes() == data
