"""What the disk says, for the planner: the Facts it asks for, and Disk, which reads them.

The planner (dedupe.plan) decides from facts alone and asks every one of them through a
Facts object: the real scan passes Disk, tests pass made-up facts. Venv files are read
through their folders' handles (dedupe.tree.At); store objects by path, in a private
folder of ours.
"""

from __future__ import annotations

import os
from typing import Protocol

from . import cow
from .cow import Extent
from .hashing import Xattrs, digest_and_xattrs, digest_file, read_header, read_whole, xattrs
from .tree import At

__all__ = ["Disk", "Facts", "File"]

File = At | str  # a venv file by handle, or a store object by path

_DEFAULT_LINK_MAX = 65000  # ext4's limit, the most common


class Facts(Protocol):
    """Every question the planner asks of files. Each may raise OSError (the file cannot
    be read, or a folder on its way was swapped: tree.FolderSwapped) and the reading ones
    hashing.FileChanged (not the inode expected, or changed while read)."""

    def stat(self, path: str) -> os.stat_result:
        """The lstat of a store object."""

    def digest(
        self,
        file: File,
        algorithm: str,
        expected: os.stat_result | None = None,
        hoped: bytes | None = None,
    ) -> bytes:
        """The file's digest, read through one descriptor (see hashing.digest_file)."""

    def header(self, file: File) -> tuple[bytes, os.stat_result]:
        """The first 16 bytes of a pyc and the stat of the inode read."""

    def whole(self, file: At, expected: os.stat_result) -> bytes:
        """All the bytes of a venv pyc, if it still is the inode expected."""

    def xattrs(self, file: File) -> tuple[tuple[str, bytes], ...]:
        """Its extended attributes, sorted; none when it has none or cannot be read."""

    def writable(self, folder: At) -> bool:
        """Whether we may add and remove names in the venv folder."""

    def is_folder(self, path: str) -> bool:
        """Whether a store folder exists."""

    def link_max(self, path: str) -> int:
        """The link limit of the filesystem holding path."""

    def extents(self, file: File) -> list[Extent]:
        """Where the file's data lies on disk (cow.extents); none for a store object that
        is not there (planned in a dry run)."""


class Disk:
    """Facts as the disk has them now.

    The planner asks for a venv file's extended attributes right after it read the file
    (its digest, or a pyc's header): they are read through the same descriptor and kept
    for that question, the attributes of the very inode proven. A path through
    /proc/self/fd, the only way to name a file by its folder's handle for the xattr
    calls, costs a lookup of its own.
    """

    def __init__(self) -> None:
        self._read: tuple[At, Xattrs] | None = None  # the venv file read last

    def stat(self, path: str) -> os.stat_result:
        return os.lstat(path)

    def digest(
        self,
        file: File,
        algorithm: str,
        expected: os.stat_result | None = None,
        hoped: bytes | None = None,
    ) -> bytes:
        if isinstance(file, At):
            fd, name = file.folder()
            digest, attributes = digest_and_xattrs(name, algorithm, expected, hoped, dir_fd=fd)
            self._read = (file, attributes)
            return digest
        return digest_file(file, algorithm, expected, hoped)

    def header(self, file: File) -> tuple[bytes, os.stat_result]:
        if isinstance(file, At):
            fd, name = file.folder()
            header, st, attributes = read_header(name, dir_fd=fd, attributes=True)
            self._read = (file, attributes)
            return header, st
        header, st, _attributes = read_header(file)
        return header, st

    def whole(self, file: At, expected: os.stat_result) -> bytes:
        fd, name = file.folder()
        return read_whole(name, expected, fd)

    def xattrs(self, file: File) -> Xattrs:
        if isinstance(file, str):
            return xattrs(file)
        if self._read is not None and self._read[0] == file:
            return self._read[1]
        try:
            fd, name = file.folder()
        except OSError:
            return ()  # as xattrs() says of a file it cannot read: the executor refuses it
        return xattrs(name, fd)

    def writable(self, folder: At) -> bool:
        return folder.writable()

    def is_folder(self, path: str) -> bool:
        return os.path.isdir(path)

    def extents(self, file: File) -> list[Extent]:
        if isinstance(file, At):
            folder, name = file.folder()
            return cow.file_extents(name, folder)
        try:
            return cow.file_extents(file)
        except FileNotFoundError:
            return []

    def link_max(self, path: str) -> int:
        try:
            return os.pathconf(path, "PC_LINK_MAX")
        except (OSError, ValueError):
            return _DEFAULT_LINK_MAX
