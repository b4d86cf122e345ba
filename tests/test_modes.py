"""Tests for dedupe.modes: which link mode a store's filesystem gets."""

from __future__ import annotations

from pathlib import Path

from dedupe import cow
from dedupe.modes import LinkMode, choose, mode_for


def test_auto_takes_reflink_where_the_filesystem_clones(cow_mount: Path) -> None:
    assert mode_for(LinkMode.AUTO, str(cow_mount)) is LinkMode.REFLINK
    assert mode_for(LinkMode.REFLINK, str(cow_mount)) is LinkMode.REFLINK
    assert mode_for(LinkMode.HARDLINK, str(cow_mount)) is LinkMode.HARDLINK


def test_auto_takes_hardlink_elsewhere_and_reflink_refuses(tmpfs_mount: Path) -> None:
    assert mode_for(LinkMode.AUTO, str(tmpfs_mount)) is LinkMode.HARDLINK
    reason = mode_for(LinkMode.REFLINK, str(tmpfs_mount))
    assert isinstance(reason, str)
    assert "cannot share data blocks" in reason


def test_the_filesystem_type_is_the_kernels(cow_mount: Path, tmpfs_mount: Path) -> None:
    assert cow.PROVEN_FILESYSTEMS.get(cow.filesystem_type(str(cow_mount)) or 0) in ("xfs", "btrfs")
    assert cow.filesystem_type(str(tmpfs_mount)) == 0x01021994  # TMPFS_MAGIC
    assert cow.filesystem_type(str(tmpfs_mount / "no-such-folder")) is None


BCACHEFS = 0xCA451A4E  # clones, but copy-on-write mode is not proven on it


def test_a_filesystem_that_clones_but_is_not_proven_gets_hardlinks() -> None:
    assert choose(LinkMode.AUTO, True, BCACHEFS) is LinkMode.HARDLINK
    reason = choose(LinkMode.REFLINK, True, BCACHEFS)
    assert isinstance(reason, str)
    assert "0xca451a4e" in reason and "proven on XFS and btrfs only" in reason
    assert choose(LinkMode.AUTO, True, 0x58465342) is LinkMode.REFLINK
    assert choose(LinkMode.REFLINK, True, 0x9123683E) is LinkMode.REFLINK
    assert choose(LinkMode.HARDLINK, True, 0x58465342) is LinkMode.HARDLINK
    assert choose(LinkMode.AUTO, False, None) is LinkMode.HARDLINK
    assert "cannot share data blocks" in str(choose(LinkMode.REFLINK, False, None))
