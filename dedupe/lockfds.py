"""The store lock descriptors open in this process, so that a forked worker keeps only
its own scan's."""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["LOCK_FDS_GUARD", "close_lock_fd", "close_other_locks", "open_lock_fd"]

# A flock lasts as long as any copy of its descriptor, and fork copies them all: a worker
# forked by one scan closes the locks of scans in other threads of this process
# (dedupe.workers forks under LOCK_FDS_GUARD, so none is between its open and this set).
_lock_fds: set[int] = set()
LOCK_FDS_GUARD = threading.Lock()


def open_lock_fd(path: str) -> int:
    """Open (creating it) a lock file, never through a symlink, and note its descriptor."""
    with LOCK_FDS_GUARD:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        _lock_fds.add(fd)
    return fd


def close_lock_fd(fd: int) -> None:
    with LOCK_FDS_GUARD:
        _lock_fds.discard(fd)
        os.close(fd)


def close_other_locks(keep: frozenset[int]) -> None:
    """In a forked child: close the lock descriptors it inherited but for keep. The
    guard is not taken: the child inherited it held, by the thread that forked."""
    for fd in _lock_fds - keep:
        with contextlib.suppress(OSError):
            os.close(fd)
