"""What pass 1 found for pass 2, kept in a private temp folder for the length of one run.

Pass 2 needs, of each venv it walks, only the candidates and the shared sources with pyc
work, with their pycs. Pass 1 parsed the venv's RECORDs and listed its folders to find
them: it writes them here, and every part of pass 2 reads them back instead of parsing and
listing again. What lives in each file's inode (type, size, owner, mode, inode number) is
taken afresh in pass 2 through the folder's handle, as the inventory would, so a file that
changed in between is judged on what it is now.

A spool holds venv paths and digests: it is written mode 0600 in a folder of mode 0700,
one file per venv, and removed with the folder when the run ends. It sits on disk, not in
memory, so memory stays bounded by the number of distinct files while a spool grows with
the number of file instances. A run holds a lock on its spool folder until it ends; a
folder a killed run left (its lock gone with it) is removed by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from typing import BinaryIO

from ..inventory import Candidate, Shared, share_of
from ..listing import Pyc
from ..store import object_key
from ..tree import At, FolderSwapped, Tree

__all__ = ["Row", "Spool", "Writer", "replay", "row"]

_PycRow = tuple[str, int, str]  # (venv-relative path, d_ino, suffix)
# A candidate: (rel, algorithm, digest, size, dist, pycs); pass 1's size is the one
# RECORD gave, when it gave one. A shared source with pyc work: (rel, inode, pycs).
# Their lengths tell them apart.
CandidateRow = tuple[str, str, bytes, int, str, tuple[_PycRow, ...]]
SharedRow = tuple[str, int, tuple[_PycRow, ...]]
Row = CandidateRow | SharedRow


def _pyc_rows(pycs: tuple[Pyc, ...]) -> tuple[_PycRow, ...]:
    return tuple((p.at.rel, p.ino, p.suffix) for p in pycs)


def row(item: Candidate | Shared) -> Row:
    """The spool row of an item pass 2 will need."""
    if isinstance(item, Candidate):
        key = item.key
        pycs = _pyc_rows(item.pycs)
        return (item.at.rel, key.algorithm, key.digest, item.st.st_size, item.dist, pycs)
    return (item.at.rel, item.ino, _pyc_rows(item.pycs))


PREFIX = "venv-dedupe-spool-"
# A run locks its folder an instant after making it: one younger than this may be
# unlocked because its run has not got that far yet.
_GRACE_SECONDS = 60.0
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Spool:
    """The spool folder of one run: a file per venv index, written once by pass 1.

    Every file is reached through the folder's handle, never by its path: where the lock
    could not be taken (a temp folder on a filesystem without flock), another run may
    remove the folder as stale, and a folder someone makes under its name meanwhile is
    never read or written; the spool is then empty, and pass 2 walks the venvs again."""

    def __init__(self) -> None:
        parent = tempfile.gettempdir()
        remove_stale(parent)
        self.folder = tempfile.mkdtemp(prefix=PREFIX, dir=parent)  # mode 0700
        self._fd = os.open(self.folder, _FOLDER)
        with contextlib.suppress(OSError):  # none holds a folder this new: no wait
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def writer(self, index: int) -> Writer:
        return Writer(self._fd, str(index))

    def read(self, index: int) -> Iterator[Row] | None:
        """A venv's rows; None when pass 1 kept none for it (a remembered venv)."""
        try:
            fd = os.open(str(index), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd)
        except OSError:
            return None
        return _rows(os.fdopen(fd, "rb"))

    def close(self) -> None:
        if self._fd >= 0:
            _remove(self.folder, self._fd)
            os.close(self._fd)
            self._fd = -1


def _remove(path: str, fd: int) -> bool:
    """Remove the spool folder open as fd: its files through the handle, then the folder
    by path if path still names it. Whether the folder went."""
    with contextlib.suppress(OSError):
        for name in os.listdir(fd):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
        if os.path.samestat(os.lstat(path), os.fstat(fd)):
            os.rmdir(path)
            return True
    return False


def remove_stale(parent: str) -> int:
    """Remove the spool folders in parent that runs killed before their end left: this
    user's, untouched for a minute, and locked by no run. How many it removed."""
    removed = 0
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            if entry.name.startswith(PREFIX):
                removed += _remove_if_stale(entry.path)
    return removed


def _remove_if_stale(path: str) -> int:
    try:
        fd = os.open(path, _FOLDER)  # neither a symlink nor a file
    except OSError:
        return 0
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or time.time() - st.st_mtime < _GRACE_SECONDS:
            return 0
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while removing it
        return int(_remove(path, fd))
    except OSError:  # a run holds it
        return 0
    finally:
        os.close(fd)


class Writer:
    """A venv's rows, kept one by one as pass 1 finds them (never all in memory), under a
    temp name until close() gives the spool its name: a spool cut short, by a failed
    write or a walk that stopped, is never read, and pass 2 walks that venv instead."""

    def __init__(self, folder: int, name: str) -> None:
        self._folder = folder
        self._name = name
        self._file: BinaryIO | None = None
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self._partial, flags, 0o600, dir_fd=folder)
            self._file = os.fdopen(fd, "wb")
        except OSError:
            pass

    @property
    def _partial(self) -> str:
        return self._name + ".partial"

    def __call__(self, r: Row) -> None:
        if self._file is not None:
            try:
                marshal.dump(r, self._file)
            except (OSError, ValueError):
                self.discard()

    def close(self) -> None:
        """Give the spool its name, once it is whole."""
        if self._file is None:
            return
        try:
            self._file.close()
            os.rename(self._partial, self._name, src_dir_fd=self._folder, dst_dir_fd=self._folder)
        except OSError:
            self.discard()
        self._file = None

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._partial, dir_fd=self._folder)
        self._file = None


def _rows(f: BinaryIO) -> Iterator[Row]:
    with f:
        while True:
            try:
                yield marshal.load(f)
            except EOFError:
                return


def replay(
    tree: Tree,
    rows: Iterator[Row],
    store_inodes: set[int],
    store_device: int,
    share: tuple[int, int] | None,
    *,
    cow: bool = False,
) -> Iterator[Candidate | Shared]:
    """The items of a spool as pass 2's inventory would give them (dedupe.inventory with
    share): each file stat-ed again through its folder's handle, and of a part's sizes
    only (a candidate's by its size in pass 1, before any stat: another part's costs
    nothing)."""

    def ours(size: int) -> bool:
        return share is None or share_of(size, share[1]) == share[0]

    for r in rows:
        found: tuple[Candidate | Shared, int] | None
        if len(r) == 6:
            found = _candidate(tree, r, store_inodes, store_device, cow) if ours(r[3]) else None
        else:
            found = _shared(tree, r, store_inodes)
        if found is not None and ours(found[1]):
            yield found[0]


def _pycs(tree: Tree, rows: tuple[_PycRow, ...]) -> tuple[Pyc, ...]:
    return tuple(Pyc(At(tree, rel), ino, suffix) for rel, ino, suffix in rows)


def _lstat(at: At) -> os.stat_result | None:
    try:
        return at.lstat()
    except (OSError, FolderSwapped):
        return None  # gone or moved since pass 1: pass 1 counted it, pass 2 leaves it


def _candidate(
    tree: Tree, r: CandidateRow, store_inodes: set[int], store_device: int, cow: bool
) -> tuple[Candidate | Shared, int] | None:
    rel, algorithm, digest, size, dist, pycs = r
    at = At(tree, rel)
    st = _lstat(at)
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_dev != store_device:
        return None
    if st.st_ino in store_inodes:
        return Shared(at, st.st_ino, _pycs(tree, pycs)), st.st_size
    if st.st_size != size:
        return None  # changed since pass 1: the next run counts it anew
    key = object_key(algorithm, digest, st, cow=cow)
    return Candidate(at, key, st, dist, _pycs(tree, pycs)), st.st_size


def _shared(tree: Tree, r: SharedRow, store_inodes: set[int]) -> tuple[Shared, int] | None:
    rel, ino, pycs = r
    at = At(tree, rel)
    st = _lstat(at)
    if st is None or st.st_ino != ino or ino not in store_inodes:
        return None
    return Shared(at, ino, _pycs(tree, pycs)), st.st_size
