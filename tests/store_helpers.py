"""Helpers for the maintenance tests: a store's objects (sources and pycs), what they save
by definition, an in-place edit that reaches every name of a shared inode, and the store's
lock held as another run holds it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def object_files(store: Path) -> dict[int, Path]:
    """{st_ino: path} of every store object, sources (objects/) and pycs (pyc/)."""
    found = {}
    for tree in ("objects", "pyc"):
        for folder, _, files in os.walk(store / tree):
            for name in files:
                path = Path(folder) / name
                found[os.lstat(path).st_ino] = path
    return found


def saving_of_objects(store: Path) -> int:
    """What the objects save, straight from the definition: an object with link count
    n >= 2 has n - 1 venv names sharing one inode, so it saves n - 2 copies."""
    total = 0
    for path in object_files(store).values():
        st = os.lstat(path)
        if st.st_nlink >= 2:
            total += (st.st_nlink - 2) * st.st_blocks * 512
    return total


def edit_in_place(path: Path) -> None:
    """Change one byte through the path, keeping its size: as an editor writing in place
    would, it reaches every name of the inode."""
    data = path.read_bytes()
    index = data.index(b"_TABLE = (\n    '") + len(b"_TABLE = (\n    '")
    with path.open("r+b") as out:
        out.seek(index)
        out.write(b"x" if data[index : index + 1] != b"x" else b"y")
    assert path.read_bytes() != data and len(path.read_bytes()) == len(data)


@contextmanager
def hold_lock(store: Path) -> Iterator[int]:
    """The store's lock, held by this process as another run would: its pid inside."""
    fd = os.open(store / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    try:
        yield os.getpid()
    finally:
        os.close(fd)
