"""How a clone's new file comes to share the data of a proven file: the ShareStep protocol,
by hardlink (one inode) or by reflink (a copy-on-write clone with its own inode).

The materialiser of dedupe.clone writes every shared file through one ShareStep and never
asks which mode its store uses. Both make a new name that did not exist: nothing is
replaced, so there is no moment where a path is missing.
"""

from __future__ import annotations

import os
import stat
from typing import Protocol

from .. import cow
from ..hashing import same_file

__all__ = ["HardlinkShare", "ReflinkShare", "ShareStep", "SourceMoved", "share_step"]

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class SourceMoved(OSError):
    """The file is no longer the one planned (an install replaced it meanwhile): dst was
    not made."""


class ShareStep(Protocol):
    def share(
        self, src_fd: int, name: str, dst: str, ino: int, expected: os.stat_result | None
    ) -> None:
        """dst, a new path, shares the data of the file name in the folder src_fd, which
        must still be the inode ino (and, by copy-on-write, the content of expected,
        which a reflink step must be given)."""


class HardlinkShare:
    """Another name of the same inode: the file already is its store object."""

    def share(
        self, src_fd: int, name: str, dst: str, ino: int, expected: os.stat_result | None
    ) -> None:
        try:
            os.link(name, dst, src_dir_fd=src_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise SourceMoved(f"{name!r} was removed after it was planned") from None
        # The name may have been replaced (pip renames over it) between the plan and the
        # link: only the planned inode, a store object, may get a name in DST (on the
        # store's filesystem: link(2) crosses none).
        if os.lstat(dst).st_ino != ino:
            os.unlink(dst)
            raise SourceMoved(f"{name!r} was replaced after it was planned")


class ReflinkShare:
    """A clone (FICLONE) of the file, which shares the store object's blocks: the new
    inode gets the file's mode and mtime, so the pycs that were valid for it are valid
    for the clone too."""

    def share(
        self, src_fd: int, name: str, dst: str, ino: int, expected: os.stat_result | None
    ) -> None:
        assert expected is not None, "a reflink share checks the file against its stat"
        try:
            src = os.open(name, _READ, dir_fd=src_fd)
        except FileNotFoundError:
            raise SourceMoved(f"{name!r} was removed after it was planned") from None
        try:
            st = os.fstat(src)
            if not stat.S_ISREG(st.st_mode) or not same_file(st, expected):
                raise SourceMoved(f"{name!r} changed after it was planned")
            out = os.open(dst, _CREATE, stat.S_IMODE(st.st_mode))
            try:
                cow.clone(src, out)
                os.fchmod(out, stat.S_IMODE(st.st_mode))  # the umask narrowed it
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            except BaseException:
                os.close(out)
                os.unlink(dst)
                raise
            os.close(out)
        finally:
            os.close(src)


def share_step(copy_on_write: bool) -> ShareStep:
    """The step of a store that shares by copy-on-write (reflinks) or by hardlinks."""
    return ReflinkShare() if copy_on_write else HardlinkShare()
