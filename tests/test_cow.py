"""Tests for dedupe.cow: clones, dedupe ranges and extents on real loop-mounted XFS and
btrfs filesystems, and the pure functions over extents without a disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import free_bytes, shares_blocks

from dedupe import cow
from dedupe.cow import Extent

BLOCK = 4096
SHARED, LAST = 0x2000, 0x1


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.sync()  # on disk, not delayed allocation: extents have a place
    return path


def _open(path: Path, flags: int = os.O_RDONLY) -> int:
    return os.open(path, flags)


def test_dedupe_shares_equal_files_and_keeps_the_inode(cow_mount: Path) -> None:
    data = os.urandom(40 * BLOCK + 123)
    a = _write(cow_mount / "a", data)
    b = _write(cow_mount / "b", data)
    os.chmod(b, 0o600)
    before = os.stat(b)
    free = free_bytes(cow_mount)
    fa, fb = _open(a), _open(b)
    try:
        assert cow.dedupe(fa, fb, len(data)) == (len(data), True)
    finally:
        os.close(fa)
        os.close(fb)
    after = os.stat(b)
    assert (after.st_ino, after.st_mode, after.st_uid, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_ino,
        before.st_mode,
        before.st_uid,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )
    assert b.read_bytes() == data
    assert shares_blocks(a, b)
    assert free_bytes(cow_mount) - free >= 40 * BLOCK  # b's blocks went


def test_dedupe_refuses_different_bytes_and_changes_nothing(cow_mount: Path) -> None:
    data = os.urandom(8 * BLOCK)
    a = _write(cow_mount / "a", data)
    other = data[:-1] + bytes([data[-1] ^ 1])
    b = _write(cow_mount / "b", other)
    fa, fb = _open(a), _open(b)
    try:
        shared, equal = cow.dedupe(fa, fb, len(data))
    finally:
        os.close(fa)
        os.close(fb)
    assert not equal
    assert shared == 0
    assert b.read_bytes() == other
    assert not shares_blocks(a, b)


def test_clone_then_a_write_reaches_only_the_clone(cow_mount: Path) -> None:
    data = os.urandom(16 * BLOCK)
    a = _write(cow_mount / "a", data)
    fa, fb = _open(a), _open(cow_mount / "b", os.O_RDWR | os.O_CREAT)
    try:
        cow.clone(fa, fb)
        os.pwrite(fb, b"edited", 0)
    finally:
        os.close(fa)
        os.close(fb)
    assert a.read_bytes() == data
    assert (cow_mount / "b").read_bytes() == b"edited" + data[6:]


def test_clone_tail_keeps_the_first_block_its_own(cow_mount: Path) -> None:
    data = os.urandom(5 * BLOCK + 10)
    a = _write(cow_mount / "a", data)
    b = cow_mount / "b"
    fa, fb = _open(a), _open(b, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fb, b"x" * BLOCK)
        cow.clone_tail(fa, fb, BLOCK)
    finally:
        os.close(fa)
        os.close(fb)
    os.sync()
    assert b.read_bytes() == b"x" * BLOCK + data[BLOCK:]
    assert shares_blocks(a, b, BLOCK)
    assert not shares_blocks(a, b)


def test_extents_flag_shared_data(cow_mount: Path) -> None:
    a = _write(cow_mount / "a", os.urandom(4 * BLOCK))
    fa = _open(a)
    try:
        assert not cow.any_shared(cow.extents(fa))
        fb = _open(cow_mount / "b", os.O_RDWR | os.O_CREAT)
        try:
            cow.clone(fa, fb)
            assert cow.shared_bytes(cow.extents(fb)) == 4 * BLOCK
        finally:
            os.close(fb)
        assert cow.any_shared(cow.extents(fa))
    finally:
        os.close(fa)


def test_can_share(cow_mount: Path, tmpfs_mount: Path) -> None:
    assert cow.can_share(str(cow_mount))
    assert not cow.can_share(str(tmpfs_mount))
    assert os.listdir(cow_mount) == []  # the trial files had no names


def test_clone_on_tmpfs_is_unsupported(tmpfs_mount: Path) -> None:
    fa = _open(_write(tmpfs_mount / "a", b"data"))
    fb = _open(tmpfs_mount / "b", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(cow.Unsupported):
            cow.clone(fa, fb)
    finally:
        os.close(fa)
        os.close(fb)


@pytest.mark.parametrize(
    ("a", "b", "start", "same"),
    [
        pytest.param([Extent(0, 100, 8, LAST)], [Extent(0, 100, 8, SHARED)], 0, True, id="flags"),
        pytest.param(
            [Extent(0, 100, 8, 0)],
            [Extent(0, 100, 4, 0), Extent(4, 104, 4, LAST)],
            0,
            True,
            id="split-on-disk-order",
        ),
        pytest.param([Extent(0, 100, 8, 0)], [Extent(0, 200, 8, 0)], 0, False, id="elsewhere"),
        pytest.param(
            [Extent(0, 100, 8, 0)],
            [Extent(0, 500, 2, 0), Extent(2, 102, 6, 0)],
            2,
            True,
            id="own-first-block",
        ),
        pytest.param([], [], 0, False, id="no-data-placed"),
        pytest.param(
            [Extent(0, 0, 8, 0x2)], [Extent(0, 0, 8, 0x2)], 0, False, id="delayed-allocation"
        ),
    ],
)
def test_same_blocks(a: list[Extent], b: list[Extent], start: int, same: bool) -> None:
    assert cow.same_blocks(a, b, start) is same


def test_shared_bytes_counts_placed_shared_extents_only() -> None:
    found = [Extent(0, 10, 4, SHARED), Extent(4, 50, 4, 0), Extent(8, 0, 4, SHARED | 0x200)]
    assert cow.shared_bytes(found) == 4
    assert cow.any_shared(found)
    assert not cow.any_shared([Extent(0, 10, 4, 0)])
