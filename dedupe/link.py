"""Carries out the planner's decisions: the only module that changes files in venvs or
adds objects to a store."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat

from .hashing import same_file
from .inventory import TMP_PREFIX
from .plan import Adopt, Link

# Test hook: called with a stage name between the steps of a replace, so fault tests can
# kill the process at the moments that matter (after the temp link, before the rename).
fault_hook = None


class Failed(Exception):
    """The action was not carried out; nothing changed. reason is a skip reason."""

    def __init__(self, reason: str, message: str, *, error: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.error = error


class TooManyLinks(Exception):
    """The object reached the filesystem's link limit (EMLINK)."""


def _hook(stage: str) -> None:
    if fault_hook is not None:
        fault_hook(stage)


def _os_failure(exc: OSError, what: str) -> Failed:
    return Failed("link-failed", f"{what}: {exc.strerror or exc}", error=True)


def _check_unchanged(path: str, expected: os.stat_result) -> None:
    # Re-stat right before touching the name: a file that moved since its bytes were
    # proven (pip replaced it, someone edited it) is left alone.
    try:
        now = os.lstat(path)
    except OSError:
        raise Failed("changed-during-scan", f"{path!r} vanished", error=False) from None
    if not same_file(now, expected):
        raise Failed("changed-during-scan", f"{path!r} changed after it was read", error=False)


def adopt(action: Adopt) -> None:
    """Give the proven file's inode a name in the store: it becomes the object."""
    _check_unchanged(action.path, action.st)
    os.makedirs(os.path.dirname(action.object_path), mode=0o755, exist_ok=True)
    try:
        # link() itself is atomic and fails if the name exists; follow_symlinks=False
        # links the name we checked, never what a symlink swapped in would point to.
        os.link(action.path, action.object_path, follow_symlinks=False)
    except OSError as exc:
        raise _os_failure(exc, f"cannot add {action.path!r} to the store") from None
    _hook("adopted")
    ost = os.lstat(action.object_path)
    now = os.lstat(action.path)
    if ost.st_ino != action.st.st_ino or now.st_mtime_ns != action.st.st_mtime_ns:
        # The file was swapped or written between the check and the link: the object
        # would not hold the proven bytes. Take it back out.
        if ost.st_ino != action.st.st_ino or ost.st_nlink > 1:
            os.unlink(action.object_path)
        raise Failed(
            "changed-during-scan", f"{action.path!r} changed while it was stored", error=False
        )


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two names (renameat2 RENAME_EXCHANGE). False where the libc or
    filesystem cannot; raises OSError for other failures (ENOENT: a name is gone)."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
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


def _swap_in(tmp: str, path: str, expected: os.stat_result, object_ino: int) -> None:
    """Put the link at tmp in place of path, never losing a file someone put at path.

    With RENAME_EXCHANGE the inode that was at path survives under tmp, so if pip
    replaced the file after our last check, its new file is swapped back instead of being
    unlinked. Without it (old kernel, some filesystems) a plain rename has a window of
    microseconds between the check and the rename.
    """
    if not _exchange(tmp, path):
        os.rename(tmp, path)
        return
    displaced = os.lstat(tmp)
    if _same_content_inode(displaced, expected):
        os.unlink(tmp)
        return
    # Someone replaced the file between our check and the swap: give it back.
    _exchange(tmp, path)
    if os.lstat(tmp).st_ino == object_ino:
        os.unlink(tmp)
    raise Failed("changed-during-scan", f"{path!r} was replaced during the scan", error=False)


def replace(action: Link) -> None:
    """Atomically replace the file by a link to its store object."""
    folder, name = os.path.split(action.path)
    # The temp name sits in the file's own folder so that rename() is atomic and stays on
    # one filesystem; its prefix lets the next run recognise leftovers of a killed run.
    tmp = os.path.join(folder, f"{TMP_PREFIX}{secrets.token_hex(8)}")
    try:
        os.link(action.object_path, tmp, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EMLINK:
            raise TooManyLinks(action.object_path) from None
        raise _os_failure(exc, f"cannot link into {folder!r}") from None
    try:
        _hook("linked")
        if os.lstat(tmp).st_ino != action.object_ino:
            raise Failed(
                "changed-during-scan",
                f"store object {action.object_path!r} was replaced",
                error=False,
            )
        _check_unchanged(action.path, action.st)
        _hook("checked")
        _swap_in(tmp, action.path, action.st, action.object_ino)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _os_failure(exc, f"cannot replace {action.path!r}") from None
        raise
    _hook("renamed")


def remove_leftover(path: str) -> bool:
    """Remove a temp link left by a killed run; it is only ever a second name of an object."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
            return True
    except OSError:
        pass
    return False
