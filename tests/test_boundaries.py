"""Never cross a boundary (invariant 4): filesystems.

Owners, permission bits, RECORD paths that leave the venv and symlinks are cases of the
casebook (test_skips.py); a venv on another filesystem needs a mount of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import (
    MakeVenvs,
    inode,
    inodes,
    run_console_script,
    snapshot,
    snapshot_diff,
)

from dedupe import scan


def test_venv_on_another_filesystem_is_skipped_and_untouched(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, tmpfs_mount: Path
) -> None:
    """A hardlink cannot cross filesystems: such a venv is reported, not half-processed."""
    a, b = make_venvs(venv_root, a=["alpha==1.0"], b=["alpha==1.0"])
    (other,) = make_venvs(tmpfs_mount, c=["alpha==1.0"])
    assert os.stat(other.path).st_dev != os.stat(venv_root).st_dev
    other_before, other_inodes = snapshot(tmpfs_mount), inodes(tmpfs_mount)

    result = scan([venv_root, tmpfs_mount], store=store_dir)

    skipped = {os.path.realpath(s.path): s.reason for s in result.skipped_venvs}
    assert os.path.realpath(other.path) in skipped, result.skipped_venvs
    assert "filesystem" in skipped[os.path.realpath(other.path)].lower()
    assert snapshot_diff(other_before, snapshot(tmpfs_mount)) == []
    assert inodes(tmpfs_mount) == other_inodes
    assert all(os.lstat(other.file(f)).st_nlink == 1 for f in ("alpha/core.py", "alpha/util.py"))
    assert run_console_script(other, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]
    # The venvs on the store's filesystem are deduplicated as usual.
    assert inode(a.file("alpha/core.py")) == inode(b.file("alpha/core.py"))


def test_two_filesystems_each_share_through_their_own_store(
    make_venvs: MakeVenvs,
    venv_root: Path,
    tmp_path: Path,
    tmpfs_mount: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no --store, each filesystem gets its own store (the user's data folder on this
    one, .venv-dedupe-store at the tmpfs' mount point), and the same files on both are
    shared within each filesystem: one object per filesystem, no link ever tried across
    (it failed with EXDEV when the planner kept one object per content for all devices)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    a, b = make_venvs(venv_root, a=["alpha==1.0"], b=["alpha==1.0"])
    c, d = make_venvs(tmpfs_mount / "venvs", c=["alpha==1.0"], d=["alpha==1.0"])

    result = scan([venv_root, tmpfs_mount / "venvs"])

    assert (result.errors, result.skipped_venvs) == ((), ())
    assert len(result.stores) == 2 and "link-failed" not in result.skipped
    for one, other in ((a, b), (c, d)):
        assert inode(one.file("alpha/util.py")) == inode(other.file("alpha/util.py"))
        assert os.lstat(one.file("alpha/util.py")).st_nlink == 3  # two venvs and the store
    assert os.lstat(a.file("alpha/util.py")).st_dev != os.lstat(c.file("alpha/util.py")).st_dev
    assert run_console_script(c, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]
