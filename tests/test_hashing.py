"""Tests for dedupe.hashing.digest_file: a file written while it is read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dedupe import hashing
from dedupe.hashing import CHUNK, FileChanged, digest_file


def written_during_the_read(monkeypatch: pytest.MonkeyPatch, path: Path, new: bytes) -> None:
    """Make the first read of path's descriptor write new over the file (in place, as an
    editor that keeps the inode would) once that read has returned."""
    real_read = os.read
    done = []

    def read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        if not done:
            done.append(True)
            with path.open("r+b") as f:
                f.write(new)
        return data

    monkeypatch.setattr(hashing.os, "read", read)


@pytest.fixture
def big(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(2 * CHUNK + 1)  # read in three parts: room to write in between
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


def test_other_bytes_written_during_the_read_raise(
    monkeypatch: pytest.MonkeyPatch, big: tuple[Path, bytes]
) -> None:
    path, data = big
    st = os.lstat(path)
    written_during_the_read(monkeypatch, path, b"\0" * len(data))
    with pytest.raises(FileChanged):
        digest_file(str(path), "sha256", expected=st, hoped=hashlib.sha256(data).digest())


def test_the_hoped_digest_is_returned_even_when_the_file_was_written(
    monkeypatch: pytest.MonkeyPatch, big: tuple[Path, bytes]
) -> None:
    # The bytes read are the hoped ones; the caller stats the file again before acting.
    path, data = big
    st = os.lstat(path)
    written_during_the_read(monkeypatch, path, data)
    hoped = hashlib.sha256(data).digest()
    assert digest_file(str(path), "sha256", expected=st, hoped=hoped) == hoped
    assert os.lstat(path).st_ctime_ns != st.st_ctime_ns  # the write did happen


def test_without_a_hoped_digest_any_write_during_the_read_raises(
    monkeypatch: pytest.MonkeyPatch, big: tuple[Path, bytes]
) -> None:
    path, data = big
    written_during_the_read(monkeypatch, path, data)
    with pytest.raises(FileChanged):
        digest_file(str(path), "sha256")
