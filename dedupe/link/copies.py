"""New files written like a given one (its owner, extended attributes and mode) and put
in its place or in the store: pyc objects, a venv's private pyc, and detach's private
copies of shared files."""

from __future__ import annotations

import contextlib
import os
import stat

from ..decisions import CreatePyc, RewritePyc
from ..execute import Failed
from ..hashing import same_file, xattrs
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
    remove_own_link,
    temp_name,
)
from .swap import swap_in
from .unlinker import Discard, unlink_now

__all__ = ["create_pyc", "make_private", "rewrite_pyc"]


def _remove_own_copy(fd: int, tmp: str, copy_ino: int | None, not_ino: int = -1) -> None:
    """Remove a temp copy of ours: before the swap (copy_ino None) whatever is at tmp
    but an inode not_ino; after it only our copy, since a swap back may have put a file
    someone else wrote at tmp."""
    if copy_ino is not None:
        remove_own_link(fd, tmp, copy_ino)
        return
    with contextlib.suppress(OSError):
        if lstat(fd, tmp).st_ino != not_ino:
            os.unlink(tmp, dir_fd=fd)


def _open_like(fd: int, name: str, like_st: os.stat_result) -> int:
    """The venv file name (in the folder fd) opened for reading, if it still is the
    inode like_st describes: the original whose owner, attributes and mode a copy takes."""
    src = os.open(name, READ, dir_fd=fd)
    if not same_file(os.fstat(src), like_st):
        os.close(src)
        raise Failed(Reason.CHANGED_DURING_SCAN, f"{name!r} changed", error=False)
    return src


def _write_temp(dir_fd: int, data: bytes, src: int, like_st: os.stat_result, shown: str) -> str:
    """A new file in the folder dir_fd holding data, on disk, with the owner, extended
    attributes and mode of the open file src (the inode like_st, named shown); its name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    tmp, fd = at_temp_name(lambda t: os.open(t, flags, 0o600, dir_fd=dir_fd))
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
        _take_metadata(fd, src, shown, like_st)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    return tmp


def create_pyc(action: CreatePyc) -> int:
    """Write a new pyc object; returns its inode number."""
    object_folder, object_name = os.path.split(action.object_path)
    vfd, name = folder(action.at)
    try:
        make_folders(object_folder)
        src = _open_like(vfd, name, action.st)
        try:
            dfd = os.open(object_folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                tmp = _write_temp(dfd, action.data, src, action.st, action.at.path)
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


def rewrite_pyc(action: RewritePyc, discard: Discard = unlink_now) -> None:
    """Replace a venv's pyc by a private copy whose header names the new source stat."""
    fd, name = folder(action.at)
    try:
        src = _open_like(fd, name, action.st)
        try:
            tmp = _write_temp(fd, action.data, src, action.st, action.path)
        finally:
            os.close(src)
    except OSError as exc:
        raise os_failure(exc, f"cannot write beside {action.path!r}") from None
    copy_ino = None
    try:
        check_unchanged(fd, name, action.st, action.path)
        copy_ino = lstat(fd, tmp).st_ino
        swap_in(fd, tmp, name, action.st, copy_ino, discard, action.path)
    except BaseException as exc:
        _remove_own_copy(fd, tmp, copy_ino)
        if isinstance(exc, OSError):
            raise os_failure(exc, f"cannot replace {action.path!r}") from None
        raise


_COPY_CHUNK = 1 << 20


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
    tmp = temp_name()
    copy_ino = None
    try:
        copy_ino = _private_copy(fd, name, st, tmp, path)
        hook("copied", at)
        check_unchanged(fd, name, st, path)
        swap_in(fd, tmp, name, st, copy_ino, unlink_now, path)
    except BaseException as exc:
        _remove_own_copy(fd, tmp, copy_ino, not_ino=st.st_ino)  # never a name of the object
        if isinstance(exc, OSError):
            raise os_failure(exc, f"cannot give {path!r} a private copy") from None
        raise
    return st


def _private_copy(fd: int, name: str, st: os.stat_result, tmp: str, shown: str) -> int:
    """Write a copy of name (proven to be the inode st describes) at tmp, both in the
    folder fd; the copy's inode."""
    src = os.open(name, READ, dir_fd=fd)
    try:
        if not same_file(os.fstat(src), st):
            raise Failed(
                Reason.CHANGED_DURING_SCAN, f"{shown!r} changed before it was copied", error=False
            )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dst = os.open(tmp, flags, 0o600, dir_fd=fd)
        try:
            while chunk := os.read(src, _COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
            if not same_file(os.fstat(src), st):
                raise Failed(
                    Reason.CHANGED_DURING_SCAN,
                    f"{shown!r} changed while it was copied",
                    error=False,
                )
            _take_metadata(dst, src, shown, st)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            # The bytes must be on disk before the name points at them: after a crash the
            # path holds either the shared inode or a complete copy.
            os.fsync(dst)
            return os.fstat(dst).st_ino
        finally:
            os.close(dst)
    finally:
        os.close(src)


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
