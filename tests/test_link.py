"""Tests for dedupe.link's Unlinker: replaced files leave their venv folders at once."""

from __future__ import annotations

import os
from pathlib import Path

from dedupe.link import Unlinker


def test_a_file_with_other_names_is_unlinked_before_the_call_returns(tmp_path: Path) -> None:
    """Freeing nothing, it is not deferred: its other names must show their new link
    count and ctime before the scan stats them."""
    first, other = tmp_path / "first", tmp_path / "other"
    first.write_bytes(b"x" * 5000)
    os.link(first, other)
    unlinker = Unlinker(str(tmp_path / "trash"))
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        unlinker(folder, first.name, os.lstat(first))
        assert not first.exists()
        assert os.lstat(other).st_nlink == 1
    finally:
        unlinker.close()
        os.close(folder)


def test_a_last_name_leaves_its_folder_at_once_and_is_gone_after_close(tmp_path: Path) -> None:
    folder, trash = tmp_path / "venv-folder", tmp_path / "store" / "trash"
    folder.mkdir()
    files = [folder / f".venv-dedupe-tmp-{i}" for i in range(50)]
    for path in files:
        path.write_bytes(os.urandom(5000))
    unlinker = Unlinker(str(trash))
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    for path in files:
        unlinker(fd, path.name, os.lstat(path))
        assert not path.exists()  # the venv folder never holds waiting files
    unlinker.close()
    os.close(fd)
    assert list(folder.iterdir()) == [] and list(trash.iterdir()) == []
    assert unlinker.failures == []
