"""Copy-on-write sharing of data blocks between separate inodes: the one module that
makes the platform's calls for it (Linux ioctls today; macOS's clonefile() would go here).

- clone(): the whole of one open file's data, shared into another (FICLONE). The kernel
  does not compare: the caller proves the destination's bytes afterwards.
- dedupe(): a range of the destination shared with the source's blocks only where the
  kernel, holding both inodes locked, finds the bytes equal (FIDEDUPERANGE). The
  destination keeps its inode, owner, mode, times and extended attributes; nothing is
  written, so a file that changed since it was proven is left as it is.
- extents(): where a file's data lies (FIEMAP), to tell data already shared; the pure
  functions after it read them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import sys
from dataclasses import dataclass

from .quiet import open_quietly

__all__ = [
    "PROVEN_FILESYSTEMS",
    "UNSUPPORTED",
    "Extent",
    "Unsupported",
    "any_shared",
    "can_share",
    "clone",
    "clone_tail",
    "dedupe",
    "extents",
    "file_extents",
    "filesystem_type",
    "inline",
    "same_blocks",
    "shared_bytes",
]

_FICLONE = 0x40049409  # _IOW(0x94, 9, int)
_FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range)
_CLONE_RANGE = struct.Struct("=qQQQ")
_FIDEDUPERANGE = 0xC0189436  # _IOWR(0x94, 54, struct file_dedupe_range)
_FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)

# struct file_dedupe_range with one struct file_dedupe_range_info after it.
_DEDUPE_HEAD = struct.Struct("=QQHHI")
_DEDUPE_INFO = struct.Struct("=qQQiI")
_DEDUPE_SAME, _DEDUPE_DIFFERS = 0, 1
# Kernels cap one call (btrfs at 16 MiB) and return what they did: ask in steps of this.
_DEDUPE_STEP = 16 << 20

# struct fiemap, then fm_extent_count struct fiemap_extent.
_FIEMAP_HEAD = struct.Struct("=QQIIII")
_FIEMAP_EXTENT = struct.Struct("=QQQQQIIII")
_FIEMAP_BATCH = 256
# Data still in the page cache has no place yet (btrfs may yet keep a small file inline):
# asking with this flag writes the file's dirty pages out first, so the answer is final.
_FIEMAP_FLAG_SYNC = 0x1
_EXTENT_LAST = 0x1
_EXTENT_UNKNOWN = 0x2  # no place on disk yet (delayed allocation) or not told
_EXTENT_INLINE = 0x200  # kept in the filesystem's metadata: never shared
_EXTENT_SHARED = 0x2000

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

# What a filesystem answers when it cannot share blocks at all.
UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS})


class Unsupported(OSError):
    """The filesystem (or the platform) cannot share data blocks between files."""


@dataclass(frozen=True, slots=True)
class Extent:
    logical: int
    physical: int
    length: int
    flags: int

    @property
    def shared(self) -> bool:
        return bool(self.flags & _EXTENT_SHARED)

    @property
    def placed(self) -> bool:
        """Whether it has a place on disk another file could share."""
        return not self.flags & (_EXTENT_UNKNOWN | _EXTENT_INLINE)


def _ioctl(fd: int, request: int, arg: int | bytes | bytearray) -> None:
    """The ioctl, with what a filesystem (or platform) that cannot share answers raised
    as Unsupported. A bytearray arg is filled in with the kernel's answer."""
    if not sys.platform.startswith("linux"):
        raise Unsupported(errno.EOPNOTSUPP, "copy-on-write sharing is only done on Linux yet")
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        if exc.errno in UNSUPPORTED:
            raise Unsupported(exc.errno, exc.strerror) from None
        raise


def clone(src: int, dst: int) -> None:
    """Make the empty file open as dst share all of src's data (FICLONE)."""
    _ioctl(dst, _FICLONE, src)


def clone_tail(src: int, dst: int, offset: int) -> None:
    """Make dst's data from offset (a multiple of the block size) to the end that of src
    from the same offset (FICLONERANGE); dst's bytes before offset stay its own."""
    _ioctl(dst, _FICLONERANGE, _CLONE_RANGE.pack(src, offset, 0, offset))


def dedupe(src: int, dst: int, length: int) -> tuple[int, bool]:
    """Share the first length bytes of dst with those of src where the kernel finds them
    equal: (bytes shared, whether every range compared equal). Stops at the first range
    that differs; what it shared before stays shared, which changes no byte."""
    done = 0
    while done < length:
        step = min(_DEDUPE_STEP, length - done)
        buf = bytearray(_DEDUPE_HEAD.pack(done, step, 1, 0, 0))
        buf += _DEDUPE_INFO.pack(dst, done, 0, 0, 0)
        _ioctl(src, _FIDEDUPERANGE, buf)
        _, _, deduped, status, _ = _DEDUPE_INFO.unpack_from(buf, _DEDUPE_HEAD.size)
        if status < 0:
            raise OSError(-status, os.strerror(-status))
        if status == _DEDUPE_DIFFERS:
            return done, False
        if deduped == 0:
            break  # nothing more the kernel will take (it shares whole blocks)
        done += deduped
    return done, True


def extents(fd: int) -> list[Extent]:
    """The extents of the open file fd's data, in file order (FIEMAP)."""
    found: list[Extent] = []
    start = 0
    while True:
        buf = bytearray(
            _FIEMAP_HEAD.pack(start, (1 << 64) - 1 - start, _FIEMAP_FLAG_SYNC, 0, _FIEMAP_BATCH, 0)
        )
        buf += bytes(_FIEMAP_EXTENT.size * _FIEMAP_BATCH)
        _ioctl(fd, _FS_IOC_FIEMAP, buf)
        mapped = _FIEMAP_HEAD.unpack_from(buf)[3]
        if mapped == 0:
            return found
        for i in range(mapped):
            fields = _FIEMAP_EXTENT.unpack_from(buf, _FIEMAP_HEAD.size + i * _FIEMAP_EXTENT.size)
            extent = Extent(fields[0], fields[1], fields[2], fields[5])
            found.append(extent)
            if extent.flags & _EXTENT_LAST:
                return found
        start = found[-1].logical + found[-1].length


def file_extents(path: str, dir_fd: int | None = None) -> list[Extent]:
    """The extents of the file path (relative to dir_fd when given), opened for reading
    without following a symlink or blocking on a FIFO."""
    fd = open_quietly(path, _READ, dir_fd)
    try:
        return extents(fd)
    finally:
        os.close(fd)


def shared_bytes(found: list[Extent]) -> int:
    """Bytes of a file's data (its extents) that blocks shared with other files hold."""
    return sum(e.length for e in found if e.placed and e.shared)


def inline(found: list[Extent]) -> bool:
    """Whether the data is kept in the filesystem's metadata (btrfs does so with small
    files): it has no blocks to share, though the kernel accepts a dedupe of it."""
    return any(e.flags & _EXTENT_INLINE for e in found)


def any_shared(found: list[Extent]) -> bool:
    """Whether any of the data shares blocks with another file: sharing it then frees
    less than its blocks (or nothing)."""
    return any(e.shared for e in found)


def same_blocks(a: list[Extent], b: list[Extent], start: int = 0) -> bool:
    """Whether two files (by their extents) hold their data from offset start on in the
    same blocks on disk: sharing them again would free nothing."""
    mine = _runs(a, start)
    return bool(mine) and mine == _runs(b, start)


def _runs(found: list[Extent], start: int) -> list[tuple[int, int, int]]:
    """(logical, physical, length) of the placed data from offset start on, with extents
    that follow each other on disk joined: filesystems split a mapping as they please."""
    runs: list[tuple[int, int, int]] = []
    for e in found:
        if not e.placed or e.logical + e.length <= start:
            continue
        skip = max(0, start - e.logical)
        logical, physical, length = e.logical + skip, e.physical + skip, e.length - skip
        if runs:
            last_logical, last_physical, last_length = runs[-1]
            if (last_logical + last_length, last_physical + last_length) == (logical, physical):
                runs[-1] = (last_logical, last_physical, last_length + length)
                continue
        runs.append((logical, physical, length))
    return runs


def write_back(fd: int, dir_fd: int) -> None:
    """Write the open file fd's data to disk and wait for it, without the journal commit
    an fsync waits for: a clone of it into an unnamed file in the folder dir_fd, which
    the filesystem makes only of data on disk (the remap writes the source's range back
    first). A name linked afterwards is logged after that data."""
    scratch = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        clone(fd, scratch)
    finally:
        os.close(scratch)


# statfs(2) f_type of the filesystems copy-on-write mode is proven on (the kernel's magic.h).
PROVEN_FILESYSTEMS = {0x58465342: "xfs", 0x9123683E: "btrfs"}


def filesystem_type(folder: str) -> int | None:
    """The statfs(2) f_type of the filesystem holding folder; None where it cannot be
    asked (not Linux, or the call fails)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only here: the one platform call that needs it

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type, a long, comes first
    if libc.statfs(os.fsencode(folder), buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def can_share(folder: str) -> bool:
    """Whether the filesystem holding folder shares data blocks between files: tried on
    two unnamed files in it (O_TMPFILE), which vanish with their descriptors."""
    if not sys.platform.startswith("linux"):
        return False  # O_TMPFILE and the clone ioctls are Linux's
    try:
        a = os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        b = os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            os.write(a, bytes(4096))
            clone(a, b)
            return True
        except OSError:
            return False
        finally:
            os.close(b)
    finally:
        os.close(a)
