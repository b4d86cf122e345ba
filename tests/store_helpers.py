"""Helpers for the maintenance tests: a store's objects (sources and pycs), what they save
by definition, and an in-place edit that reaches every name of a shared inode."""

from __future__ import annotations

import os
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
