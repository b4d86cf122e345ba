"""Reading a file's bytes to prove its content; nothing here writes."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct

from .quiet import open_quietly

# A read of a big file at a time: each is a new bytes object, and one of a MiB or more
# comes from the heap of every worker that hashes, which keeps it.
CHUNK = 1 << 18
# Every read here: never through a symlink, never blocking on a FIFO put in a file's place.
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileChanged(Exception):
    """The file is not the one that was stat'ed, or changed while it was read."""


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """True when two stats describe the same, unmodified inode.

    ctime is included: it moves on every write, chmod, chown and link count change,
    including writes that restore mtime afterwards (touch -r, cp -p).
    """
    return fingerprint(a) == fingerprint(b)


def same_content(a: os.stat_result, b: os.stat_result) -> bool:
    """same_file but for ctime: what our own link, rename or unlink of a name moves
    (with the link count) is left out; a write, chmod or chown still shows."""
    return same_content_fingerprint(fingerprint(a), fingerprint(b))


def same_content_fingerprint(a: bytes, b: bytes) -> bool:
    """same_content for two fingerprints (all but ctime)."""
    return a[:_CONTENT_PART] == b[:_CONTENT_PART]


# What identifies an inode's state: device, inode, size, mtime, mode, owner, group, and
# ctime last. A planner keeps one per store object: a stat_result with its int and
# float objects takes about 600 bytes, this about 90.
_FINGERPRINT = struct.Struct("<QQqqIIIq")


def fingerprint(st: os.stat_result) -> bytes:
    """The stat's identifying fields, packed; the first _CONTENT_PART bytes leave ctime out."""
    return _FINGERPRINT.pack(
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_mode,
        st.st_uid,
        st.st_gid,
        st.st_ctime_ns,
    )


_CONTENT_PART = _FINGERPRINT.size - 8  # all but ctime


def fingerprint_ino(fp: bytes) -> int:
    """The inode number a fingerprint names."""
    return int.from_bytes(fp[8:16], "little")


Xattrs = tuple[tuple[str, bytes], ...]


def xattrs(target: str | int, dir_fd: int | None = None) -> Xattrs:
    """Extended attributes (ACLs, SELinux labels, capabilities) of a path (never followed;
    relative to dir_fd when given) or an open descriptor, sorted; none where the
    filesystem has none."""
    if dir_fd is not None and isinstance(target, str):
        # The xattr calls take no dir_fd: name the file through the folder's handle.
        target = f"/proc/self/fd/{dir_fd}/{target}"
    try:
        if isinstance(target, int):
            return tuple(sorted((n, os.getxattr(target, n)) for n in os.listxattr(target)))
        names = os.listxattr(target, follow_symlinks=False)
        return tuple(sorted((n, os.getxattr(target, n, follow_symlinks=False)) for n in names))
    except OSError:
        return ()


def digest_file(
    path: str,
    algorithm: str,
    expected: os.stat_result | None = None,
    hoped: bytes | None = None,
    dir_fd: int | None = None,
) -> bytes:
    """The file's digest in the given algorithm, read through a descriptor that was
    checked to be the expected inode (no symlink followed, no FIFO blocking us).

    FileChanged when the file changed while it was read, except when the digest is the
    hoped one: a caller that passes hoped stats the file again before it acts on it (the
    planner's Link and Adopt), so only another digest needs telling apart from a write
    that was under way. path is relative to dir_fd when given."""
    fd = open_quietly(path, READ, dir_fd)
    try:
        return _digest(fd, path, algorithm, expected, hoped)
    finally:
        os.close(fd)


def digest_and_xattrs(
    path: str,
    algorithm: str,
    expected: os.stat_result | None = None,
    hoped: bytes | None = None,
    dir_fd: int | None = None,
) -> tuple[bytes, Xattrs]:
    """digest_file, and the extended attributes of the inode read, through the same
    descriptor: no second lookup of the name (xattr calls take no dir_fd)."""
    fd = open_quietly(path, READ, dir_fd)
    try:
        return _digest(fd, path, algorithm, expected, hoped), xattrs(fd)
    finally:
        os.close(fd)


def _digest(
    fd: int, path: str, algorithm: str, expected: os.stat_result | None, hoped: bytes | None
) -> bytes:
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
    digest = h.digest()
    if digest != hoped and not same_file(os.fstat(fd), before):
        raise FileChanged(f"{path!r} changed while it was read")
    return digest


def read_small(path: str, limit: int, dir_fd: int | None = None) -> bytes:
    """A regular file's bytes, refusing one larger than limit (OSError either way)."""
    fd = open_quietly(path, READ, dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        with os.fdopen(fd, "rb", closefd=False) as f:
            # A read allocates what it asks for: ask for the file's size, not the limit.
            data = f.read(min(st.st_size, limit) + 1)
            if len(data) > st.st_size:  # it grew meanwhile
                data += f.read(limit + 1 - len(data))
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
    return data


def read_whole(path: str, expected: os.stat_result, dir_fd: int | None = None) -> bytes:
    """A regular file's bytes, if it still is the expected, unmodified inode."""
    fd = open_quietly(path, READ, dir_fd)
    try:
        if not same_file(os.fstat(fd), expected):
            raise FileChanged(f"{path!r} changed after it was examined")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def read_header(
    path: str, size: int = 16, dir_fd: int | None = None, attributes: bool = False
) -> tuple[bytes, os.stat_result, Xattrs]:
    """The first bytes of a regular file, its stat and (with attributes; else none) its
    extended attributes, through one descriptor."""
    fd = open_quietly(path, READ, dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileChanged(f"{path!r} is not a regular file")
        return os.pread(fd, size, 0), st, xattrs(fd) if attributes else ()
    finally:
        os.close(fd)
