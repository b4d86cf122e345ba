"""Reading a file's bytes to prove its content; nothing here writes."""

from __future__ import annotations

import errno
import hashlib
import os
import stat

CHUNK = 1 << 20
# Every read here: never through a symlink, never blocking on a FIFO put in a file's place.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileChanged(Exception):
    """The file is not the one that was stat'ed, or changed while it was read."""


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """True when two stats describe the same, unmodified inode.

    ctime is included: it moves on every write, chmod, chown and link count change,
    including writes that restore mtime afterwards (touch -r, cp -p).
    """
    return (
        a.st_dev == b.st_dev
        and a.st_ino == b.st_ino
        and a.st_size == b.st_size
        and a.st_mtime_ns == b.st_mtime_ns
        and a.st_ctime_ns == b.st_ctime_ns
        and a.st_mode == b.st_mode
        and a.st_uid == b.st_uid
        and a.st_gid == b.st_gid
    )


def same_content(a: os.stat_result, b: os.stat_result) -> bool:
    """same_file but for ctime: what our own link, rename or unlink of a name moves
    (with the link count) is left out; a write, chmod or chown still shows."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_mode, a.st_uid, a.st_gid) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
        b.st_mode,
        b.st_uid,
        b.st_gid,
    )


def xattrs(target: str | int) -> tuple[tuple[str, bytes], ...]:
    """Extended attributes (ACLs, SELinux labels, capabilities) of a path (never followed)
    or an open descriptor, sorted; none where the filesystem has none."""
    try:
        if isinstance(target, int):
            return tuple(sorted((n, os.getxattr(target, n)) for n in os.listxattr(target)))
        names = os.listxattr(target, follow_symlinks=False)
        return tuple(sorted((n, os.getxattr(target, n, follow_symlinks=False)) for n in names))
    except OSError:
        return ()


def digest_file(path: str, algorithm: str, expected: os.stat_result | None = None) -> bytes:
    """The file's digest in the given algorithm, read through a descriptor that was
    checked to be the expected inode (no symlink followed, no FIFO blocking us)."""
    fd = os.open(path, _READ)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise FileChanged(f"{path!r} is no longer a regular file")
        if expected is not None and not same_file(before, expected):
            raise FileChanged(f"{path!r} changed after it was examined")
        h = hashlib.new(algorithm)
        # Reads sized to the file: most installed files are a few KiB, and a fresh
        # CHUNK-sized buffer per file costs more than hashing them. A file that grew or
        # shrank meanwhile fails the fstat comparison below.
        left = before.st_size
        while left > 0 and (data := os.read(fd, min(left, CHUNK))):
            h.update(data)
            left -= len(data)
        if not same_file(os.fstat(fd), before):
            raise FileChanged(f"{path!r} changed while it was read")
        return h.digest()
    finally:
        os.close(fd)


def read_small(path: str, limit: int) -> bytes:
    """A regular file's bytes, refusing one larger than limit (OSError either way)."""
    fd = os.open(path, _READ)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
    return data


def read_whole(path: str, expected: os.stat_result) -> bytes:
    """A regular file's bytes, if it still is the expected, unmodified inode."""
    fd = os.open(path, _READ)
    try:
        if not same_file(os.fstat(fd), expected):
            raise FileChanged(f"{path!r} changed after it was examined")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def read_header(path: str, size: int = 16) -> tuple[bytes, os.stat_result]:
    """The first bytes of a regular file and its stat, through one descriptor."""
    fd = os.open(path, _READ)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileChanged(f"{path!r} is not a regular file")
        return os.pread(fd, size, 0), st
    finally:
        os.close(fd)
