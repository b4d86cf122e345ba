"""Opening a file or folder to read it without moving its access time (Linux's O_NOATIME).

A scan reads every RECORD, lists every folder and proves every file it links, in every
venv: with atimes kept, each would look used just now (to tmpreaper, systemd-tmpfiles'
age and any cleanup of idle venvs that goes by atime), and writing those atimes took
about 1.4% of a first run's CPU (24 venvs whose atimes were older than a day). The
kernel grants the flag to a file's owner and to root (CAP_FOWNER); on another's file it
answers EPERM, and the file is opened as usual.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

__all__ = ["open_quietly", "scandir_quietly"]

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

_NOATIME: int = getattr(os, "O_NOATIME", 0)


def open_quietly(path: str, flags: int, dir_fd: int | None = None) -> int:
    """os.open(path, flags, dir_fd=dir_fd), without an atime update where we may."""
    if _NOATIME:
        try:
            return os.open(path, flags | _NOATIME, dir_fd=dir_fd)
        except PermissionError as exc:
            if exc.errno != errno.EPERM:
                raise  # EACCES: not readable, with or without the flag
    return os.open(path, flags, dir_fd=dir_fd)


@contextlib.contextmanager
def scandir_quietly(path: str) -> Iterator[Iterator[os.DirEntry[str]]]:
    """os.scandir(path) without an atime update where we may: the entries' .path is
    their name alone, and they are to be read inside the block (a filesystem that gives
    no d_type answers is_dir() through the folder's handle)."""
    fd = open_quietly(path, _FOLDER)
    try:
        with os.scandir(fd) as it:
            yield it
    finally:
        os.close(fd)
