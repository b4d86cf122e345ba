"""Putting a store object in place of a venv file: adopt (the proven file's inode becomes
the object), replace (the file becomes a link to its object), and swap_in, the atomic
exchange that replace and the private copies (dedupe.link.copies) end with."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os

from ..decisions import Adopt, Link
from ..execute import Failed, TooManyLinks
from ..hashing import same_content
from ..reasons import Reason
from .objects import make_folders
from .steps import (
    at_temp_name,
    check_unchanged,
    folder,
    hook,
    lstat,
    os_failure,
    remove_own,
)
from .unlinker import Discard, unlink_now

__all__ = ["adopt", "replace", "swap_in"]


def adopt(action: Adopt) -> None:
    """Give the proven file's inode a name in the store: it becomes the object."""
    hook("adopt", action.at)
    fd, name = folder(action.at)
    check_unchanged(fd, name, action.st, action.path)
    try:
        make_folders(os.path.dirname(action.object_path))
        # link() itself is atomic and fails if the name exists; follow_symlinks=False
        # links the name we checked, never what a symlink swapped in would point to.
        os.link(name, action.object_path, src_dir_fd=fd, follow_symlinks=False)
    except OSError as exc:
        raise os_failure(exc, f"cannot add {action.path!r} to the store") from None
    hook("adopted", action.at)
    # The link took whatever inode was at the path at that instant. The object is sound
    # only if that is the inode we proved, unwritten since (pip may have renamed a new
    # file over the path in between: then the object is not ours to keep).
    try:
        ost = os.lstat(action.object_path)
    except OSError as exc:
        raise os_failure(exc, f"cannot check {action.object_path!r}") from None
    if not same_content(ost, action.st):
        with contextlib.suppress(OSError):
            os.unlink(action.object_path)
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{action.path!r} changed while it was stored", error=False
        )


_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _exchange(fd: int, a: str, b: str) -> bool:
    """Atomically swap two names in the folder fd (renameat2 RENAME_EXCHANGE). False where
    the libc or filesystem cannot; raises OSError for other failures (ENOENT: a name is
    gone)."""
    if _renameat2 is None:
        return False
    if _renameat2(fd, os.fsencode(a), fd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def _same_content_inode(a: os.stat_result, b: os.stat_result) -> bool:
    # rename changes an inode's ctime, so compare what a write would change instead.
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
    )


def swap_in(
    fd: int,
    tmp: str,
    name: str,
    expected: os.stat_result,
    object_ino: int,
    discard: Discard,
    shown: str,
) -> None:
    """Put the link at tmp in place of name (both in the folder fd), never losing a file
    someone put at name.

    With RENAME_EXCHANGE the inode that was at name survives under tmp, so if pip
    replaced the file after our last check, its new file is swapped back instead of being
    unlinked. Without it (old kernel, some filesystems) a plain rename has a window of
    microseconds between the check and the rename.
    """
    if not _exchange(fd, tmp, name):
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        return
    displaced = lstat(fd, tmp)
    if _same_content_inode(displaced, expected):
        discard(fd, tmp, displaced, shown)
        return
    # Someone replaced the file between our check and the swap: give it back.
    _exchange(fd, tmp, name)
    if lstat(fd, tmp).st_ino == object_ino:
        os.unlink(tmp, dir_fd=fd)
    raise Failed(Reason.CHANGED_DURING_SCAN, f"{shown!r} was replaced during the scan", error=False)


def replace(action: Link, discard: Discard = unlink_now) -> None:
    """Atomically replace the file by a link to its store object; the file's own inode
    goes through discard."""
    hook("replace", action.at)
    fd, name = folder(action.at)
    # The temp name sits in the file's own folder so that rename() is atomic and stays on
    # one filesystem; its prefix lets the next run recognise leftovers of a killed run.
    try:
        tmp, _ = at_temp_name(
            lambda t: os.link(action.object_path, t, dst_dir_fd=fd, follow_symlinks=False)
        )
    except OSError as exc:
        if exc.errno == errno.EMLINK:
            raise TooManyLinks(action.object_path) from None
        raise os_failure(exc, f"cannot link into the folder of {action.path!r}") from None
    try:
        hook("linked", action.at)
        if lstat(fd, tmp).st_ino != action.object_ino:
            raise Failed(
                Reason.CHANGED_DURING_SCAN,
                f"store object {action.object_path!r} was replaced",
                error=False,
            )
        check_unchanged(fd, name, action.st, action.path)
        hook("checked", action.at)
        swap_in(fd, tmp, name, action.st, action.object_ino, discard, action.path)
    except BaseException as exc:
        remove_own(fd, tmp, action.object_ino)
        if isinstance(exc, OSError):
            raise os_failure(exc, f"cannot replace {action.path!r}") from None
        raise
    hook("renamed", action.at)
