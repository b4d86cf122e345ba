"""Folder handles: each folder of a venv opened without following symlinks, relative to
its parent's handle, and proven to be the folder that was listed.

Every later open, stat, link, rename and unlink of a venv file goes through its folder's
handle (the `dir_fd=` forms), so a folder that the venv's owner swaps for a symlink in
the middle of a run cannot send root's writes or reads elsewhere: the path is resolved
once, component by component, and a folder whose identity (device, inode) is not the
one first seen is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections import OrderedDict
from dataclasses import dataclass

from .discovery import Venv
from .quiet import open_quietly

__all__ = ["At", "FolderSwapped", "Growth", "Tree", "split", "venv_tree"]

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class FolderSwapped(OSError):
    """A folder on the way is a symlink now, or another folder than the one listed."""


def split(rel: str) -> tuple[str, str]:
    """A venv-relative path as (folder, name); '' is the venv root."""
    folder, _, name = rel.rpartition("/")
    return folder, name


_MODE_BITS = 0xFFFFFFFF  # what Tree._first keeps of a folder below its identity


def _identity(device: int, ino: int) -> int:
    return device << 64 | ino


class Growth:
    """The folders of a tree that took more blocks while the run had them open: a temp
    name added to a full folder gives it a new block, and ext4 never gives one back.

    Each folder is kept as (fewest, most) blocks seen, so that the windows of two
    processes that work in one venv at once, merged, count its growth once."""

    def __init__(self) -> None:
        self._folders: dict[str, tuple[int, int]] = {}

    def note(self, rel: str, before: int, after: int) -> None:
        if before != after or rel in self._folders:
            self._add(rel, before, after)

    def _add(self, rel: str, before: int, after: int) -> None:
        fewest, most = self._folders.get(rel, (before, after))
        self._folders[rel] = (min(fewest, before), max(most, after))

    def merge(self, other: Growth) -> None:
        for rel, (before, after) in other._folders.items():
            self._add(rel, before, after)

    @property
    def bytes(self) -> int:
        return sum(most - fewest for fewest, most in self._folders.values()) * 512


class Tree:
    """The folder handles of one tree (a venv, or a store), opened on demand.

    A descriptor that fd() returns stays open until the next call of fd() on this tree,
    which may close the least recently used ones: use it at once, and ask again.
    """

    def __init__(
        self,
        root: str,
        ident: tuple[int, int] | None = None,
        keep: int = 64,
        measure_growth: bool = False,
    ) -> None:
        self.root = root
        self._root = None if ident is None else _identity(*ident)  # the listed root's
        # Each folder's identity (device, inode) and st_mode when first opened, in one int:
        # a scan opens thousands of folders, and a tuple with its ints costs 150 bytes more.
        self._first: dict[str, int] = {}
        self._open: OrderedDict[str, int] = OrderedDict()
        self._keep = keep
        # The folder asked for last, and its handle: RECORD lists a folder's files
        # together, so most calls ask for it again. It is always the newest of _open
        # (set on every return, cleared by close), so no eviction can have closed it.
        self._last: tuple[str, int] | None = None
        # measure_growth: the st_blocks of each open folder when its handle was opened,
        # and the folders that grew while their handles were open (see Growth).
        self._blocks: dict[str, int] | None = {} if measure_growth else None
        self.growth = Growth()

    def fd(self, rel: str) -> int:
        """The handle of the folder rel ('' is the root). A later open (after eviction)
        must find the folder first opened, and the root the one discovery found (the
        tree's ident). FolderSwapped when it is not that folder, a symlink, or not a
        folder.

        The first open of a folder is not checked against the inode its parent's
        listing gave: those differ for a mount point (and on some overlay filesystems),
        and O_NOFOLLOW already refuses a symlink. A real folder renamed in place of it
        meanwhile can only be one the venv's owner could have moved there before the
        run began."""
        last = self._last
        if last is not None and last[0] == rel:
            return last[1]
        found = self._open.get(rel)
        if found is not None:
            self._open.move_to_end(rel)
            self._last = (rel, found)
            return found
        if rel:
            parent, name = split(rel)
            fd = self._open_at(self.fd(parent), name, rel)
        else:
            fd = self._open_at(None, self.root, rel)
        try:
            st = os.fstat(fd)
            ident = _identity(st.st_dev, st.st_ino)
            if ident != self._expected(rel, ident):
                raise FolderSwapped(errno.ESTALE, "not the folder that was listed", self.path(rel))
            self._first.setdefault(rel, ident << 32 | st.st_mode)
            if self._blocks is not None:
                self._blocks[rel] = st.st_blocks
        except BaseException:
            os.close(fd)
            raise
        self._open[rel] = fd
        while len(self._open) > self._keep:
            self._close(*self._open.popitem(last=False))
        self._last = (rel, fd)
        return fd

    def _expected(self, rel: str, ident: int) -> int:
        """The identity the folder rel must have: the root's that discovery found, else
        the one its first open found (ident, when this is its first)."""
        if not rel and self._root is not None:
            return self._root
        first = self._first.get(rel)
        return ident if first is None else first >> 32

    def _open_at(self, parent: int | None, name: str, rel: str) -> int:
        try:
            return open_quietly(name, _FOLDER, parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise FolderSwapped(
                    exc.errno, "a symlink or not a folder", self.path(rel)
                ) from None
            raise

    def lstat(self, rel: str) -> os.stat_result:
        """The stat of rel itself (never followed), through its folder's handle."""
        if not rel:
            return os.fstat(self.fd(""))
        folder, name = split(rel)
        return os.stat(name, dir_fd=self.fd(folder), follow_symlinks=False)

    def folder_mode(self, rel: str) -> int:
        """The st_mode of the folder rel, from the stat taken when its handle was first
        opened (that is its inode still, or fd() would refuse it): no second stat of a
        folder. Only the mode is kept of it: a scan opens thousands of folders, and a
        whole stat_result is 17 objects, about 700 bytes."""
        if rel not in self._first:
            self.fd(rel)
        return self._first[rel] & _MODE_BITS

    def scandir(self, rel: str) -> list[os.DirEntry[str]]:
        """The entries of the folder rel, read through its handle."""
        with os.scandir(self.fd(rel)) as it:
            return list(it)

    def path(self, rel: str) -> str:
        """rel as a path, for messages and reports only: never to act on."""
        return f"{self.root}/{rel}" if rel else self.root

    def close(self) -> None:
        self._last = None
        while self._open:
            self._close(*self._open.popitem())

    def _close(self, rel: str, fd: int) -> None:
        if self._blocks is not None:
            with contextlib.suppress(OSError):  # fstat of an open handle does not fail
                self.growth.note(rel, self._blocks.pop(rel), os.fstat(fd).st_blocks)
        os.close(fd)

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A tree dropped without close() (an inventory stopped early) must not leak
        # descriptors: a scan walks thousands of venvs.
        self.close()


def venv_tree(venv: Venv, measure_growth: bool = False) -> Tree:
    """The folder handles of a venv, its root checked to be the folder discovery found:
    a folder above it swapped for a symlink between discovery and a pass redirects
    nothing either."""
    ident = (venv.device, venv.ino) if venv.ino else None
    return Tree(venv.root, ident, measure_growth=measure_growth)


@dataclass(frozen=True, slots=True)
class At:
    """Where a file is: its tree and its path relative to the tree's root."""

    tree: Tree
    rel: str

    @property
    def path(self) -> str:
        """For messages and reports only: never to act on."""
        return self.tree.path(self.rel)

    def folder(self) -> tuple[int, str]:
        """(the handle of the file's folder, the file's name): what to act on. The handle
        is valid until the next call that asks the tree for one."""
        folder, name = split(self.rel)
        return self.tree.fd(folder), name

    def lstat(self) -> os.stat_result:
        return self.tree.lstat(self.rel)

    def parent(self) -> At:
        return At(self.tree, split(self.rel)[0])

    def writable(self) -> bool:
        """Whether we may add and remove names in this folder."""
        if not self.rel:
            return _may_write(self.tree.path(""), None)
        try:
            fd, name = self.folder()
        except OSError:
            return False
        return _may_write(name, fd)


def _may_write(name: str, dir_fd: int | None) -> bool:
    return os.access(
        name,
        os.W_OK | os.X_OK,
        dir_fd=dir_fd,
        effective_ids=os.access in os.supports_effective_ids,
        follow_symlinks=False,
    )
