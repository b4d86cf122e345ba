"""Tests for dedupe.modes: which link mode a store's filesystem gets."""

from __future__ import annotations

from pathlib import Path

from dedupe.modes import LinkMode, mode_for


def test_auto_takes_reflink_where_the_filesystem_clones(cow_mount: Path) -> None:
    assert mode_for(LinkMode.AUTO, str(cow_mount)) is LinkMode.REFLINK
    assert mode_for(LinkMode.REFLINK, str(cow_mount)) is LinkMode.REFLINK
    assert mode_for(LinkMode.HARDLINK, str(cow_mount)) is LinkMode.HARDLINK


def test_auto_takes_hardlink_elsewhere_and_reflink_refuses(tmpfs_mount: Path) -> None:
    assert mode_for(LinkMode.AUTO, str(tmpfs_mount)) is LinkMode.HARDLINK
    reason = mode_for(LinkMode.REFLINK, str(tmpfs_mount))
    assert isinstance(reason, str)
    assert "cannot share data blocks" in reason
