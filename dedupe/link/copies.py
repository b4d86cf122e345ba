"""New files written like a given one (its owner, extended attributes and mode) and put
in its place or in the store: pyc objects, a venv's private pyc, and detach's private
copies of shared files."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

from ..decisions import CreatePyc, RewritePyc
from ..execute import Failed
from ..hashing import same_file, xattrs
from ..quiet import open_quietly
from ..reasons import Reason
from ..tree import At
from .objects import make_folders
from .steps import (
    READ,
    at_temp_name,
    check_unchanged,
    folder,
    hook,
    lstat,
    os_failure,
    remove_own,
)
from .swap import swap_in
from .unlinker import Discard, unlink_now

__all__ = [
    "Fill",
    "copied_from",
    "create_pyc",
    "holding",
    "make_private",
    "rewrite_pyc",
    "write_all",
    "write_like",
]

# Writes a new file's bytes into it, open for writing at offset 0.
Fill = Callable[[int], None]

_COPY_CHUNK = 1 << 20


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def holding(data: bytes) -> Fill:
    """The fill of a file that holds data."""
    return lambda fd: write_all(fd, data)


def copied_from(src: int, like: os.stat_result, shown: str) -> Fill:
    """The fill of a copy of the open file src, the inode like describes (named shown):
    a file written while it was copied fails the copy."""

    def fill(fd: int) -> None:
        while chunk := os.read(src, _COPY_CHUNK):
            write_all(fd, chunk)
        if not same_file(os.fstat(src), like):
            raise Failed(
                Reason.CHANGED_DURING_SCAN, f"{shown!r} changed while it was copied", error=False
            )

    return fill


def write_like(
    dir_fd: int,
    fill: Fill,
    src: int,
    like: os.stat_result,
    shown: str,
    *,
    times: bool,
    written: bool = True,
) -> tuple[str, int]:
    """A new file under a temp name in the folder dir_fd, filled by fill and on disk, with
    the owner, extended attributes and mode of the open file src (the inode like, named
    shown), and with times its access and modification times; (its name, its inode).
    written=False: fill writes no data, only clones (dedupe.cow.clone), which the
    filesystem logs in order with a later rename, so no fsync is needed.
    Nothing of it is left when it fails."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    tmp, fd = at_temp_name(lambda t: os.open(t, flags, 0o600, dir_fd=dir_fd))
    try:
        ino = os.fstat(fd).st_ino
        try:
            fill(fd)
            _take_metadata(fd, src, shown, like)
            if times:
                os.utime(fd, ns=(like.st_atime_ns, like.st_mtime_ns))
            if written:
                # The bytes must be on disk before a name points at them: after a crash
                # the path holds either the inode it had or a complete copy.
                os.fsync(fd)
        except BaseException:
            remove_own(dir_fd, tmp, ino)
            raise
    finally:
        os.close(fd)
    return tmp, ino


def _open_like(fd: int, name: str, like: os.stat_result, shown: str) -> int:
    """The venv file name (in the folder fd) opened for reading, if it still is the
    inode like describes: the original whose owner, attributes and mode a copy takes."""
    src = open_quietly(name, READ, fd)
    if not same_file(os.fstat(src), like):
        os.close(src)
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{shown!r} changed before it was copied", error=False
        )
    return src


def _copy_beside(
    fd: int, name: str, like: os.stat_result, shown: str, data: bytes | None
) -> tuple[str, int]:
    """A copy of the venv file name (in the folder fd, still the inode like) under a temp
    name beside it: with its bytes and times, or holding data; (its name, its inode)."""
    src = _open_like(fd, name, like, shown)
    try:
        if data is None:
            return write_like(fd, copied_from(src, like, shown), src, like, shown, times=True)
        return write_like(fd, holding(data), src, like, shown, times=False)
    finally:
        os.close(src)


def create_pyc(action: CreatePyc) -> int:
    """Write a new pyc object; returns its inode number."""
    object_folder, object_name = os.path.split(action.object_path)
    vfd, name = folder(action.at)
    try:
        make_folders(object_folder)
        src = _open_like(vfd, name, action.st, action.at.path)
        try:
            dfd = os.open(object_folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                tmp, _ = write_like(
                    dfd, holding(action.data), src, action.st, action.at.path, times=False
                )
                try:
                    # link() fails if the name exists: a pyc object is never overwritten.
                    os.link(tmp, object_name, src_dir_fd=dfd, dst_dir_fd=dfd)
                    return lstat(dfd, object_name).st_ino
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dfd)
            finally:
                os.close(dfd)
        finally:
            os.close(src)
    except OSError as exc:
        raise os_failure(exc, f"cannot write {action.object_path!r}") from None


def rewrite_pyc(action: RewritePyc, discard: Discard = unlink_now) -> int:
    """Replace a venv's pyc by a private copy whose header names the new source stat;
    returns the copy's inode number."""
    fd, name = folder(action.at)
    try:
        tmp, copy_ino = _copy_beside(fd, name, action.st, action.path, action.data)
    except OSError as exc:
        raise os_failure(exc, f"cannot write beside {action.path!r}") from None
    try:
        check_unchanged(fd, name, action.st, action.path)
        swap_in(fd, tmp, name, action.st, copy_ino, discard, action.path)
    except BaseException as exc:
        remove_own(fd, tmp, copy_ino)  # after a swap back, it holds someone's file
        if isinstance(exc, OSError):
            raise os_failure(exc, f"cannot replace {action.path!r}") from None
        raise
    return copy_ino


def make_private(at: At, object_ino: int) -> os.stat_result:
    """Replace the file at, a name of the store object object_ino, by a private copy with
    the same bytes, mode, owner and times; return the stat of the shared inode it replaced.

    The copy is written and fsync'ed under a temp name in the file's own folder, then
    swapped in with the same re-stat and atomic exchange as replace(): the path is never
    missing, and a file that pip put there meanwhile is never lost.
    """
    path = at.path
    hook("detach", at)
    fd, name = folder(at)
    # Stat now, not when the detach was planned: detaching another name of the same inode
    # since then changed its link count and ctime.
    try:
        st = lstat(fd, name)
    except OSError:
        raise Failed(Reason.CHANGED_DURING_SCAN, f"{path!r} vanished", error=False) from None
    if not stat.S_ISREG(st.st_mode) or st.st_ino != object_ino:
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{path!r} is no longer linked to the store", error=False
        )
    try:
        tmp, copy_ino = _copy_beside(fd, name, st, path, None)
    except OSError as exc:
        raise os_failure(exc, f"cannot give {path!r} a private copy") from None
    try:
        hook("copied", at)
        check_unchanged(fd, name, st, path)
        swap_in(fd, tmp, name, st, copy_ino, unlink_now, path)
    except BaseException as exc:
        remove_own(fd, tmp, copy_ino)  # never the object's name, nor someone's file
        if isinstance(exc, OSError):
            raise os_failure(exc, f"cannot give {path!r} a private copy") from None
        raise
    return st


def _take_metadata(dst: int, src: int, path: str, st: os.stat_result) -> None:
    """Give the new file dst the owner, extended attributes and mode of path (open as
    src, the inode st describes). Owner first: chown clears set-id bits and file
    capabilities, so the extended attributes and the mode go on after it."""
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(dst, st.st_uid, st.st_gid)
        except PermissionError:
            raise Failed(
                Reason.LINK_FAILED,
                f"cannot give the copy of {path!r} its owner uid {st.st_uid} gid "
                f"{st.st_gid}: run as root or as that user",
                error=True,
            ) from None
    wanted = xattrs(src)
    for name, value in wanted:
        with contextlib.suppress(OSError):
            os.setxattr(dst, name, value)
    if xattrs(dst) != wanted:
        # A copy without its original's ACL or label must not stand in for it (and the
        # planner links further files to a pyc object on the word of these attributes).
        raise Failed(
            Reason.XATTRS_DIFFER,
            f"cannot give the copy of {path!r} the extended attributes of its original",
            error=True,
        )
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
