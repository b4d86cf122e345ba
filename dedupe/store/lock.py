"""The store's lock: one run at a time, and the others told whom they wait for."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable

from ..errors import StoreError, StoreLockedError
from ..lockfds import close_lock_fd, open_lock_fd

__all__ = ["LOCK_POLL_SECONDS", "take"]


LOCK_POLL_SECONDS = 0.2


def take(
    store_path: str, *, timeout: float = 0.0, on_wait: Callable[[str], None] | None = None
) -> int:
    """Take the lock of the store at store_path for this process; its descriptor, which
    holds the lock until it is closed (lockfds.close_lock_fd).

    When another run holds it, poll every LOCK_POLL_SECONDS for up to timeout seconds
    (on_wait is told once, with a message naming the holder's pid), then raise
    StoreLockedError. The default, timeout=0, raises at once.
    """
    lock_path = os.path.join(store_path, "lock")
    try:
        fd = open_lock_fd(lock_path)
    except OSError as exc:
        raise StoreError(
            f"cannot open the lock file {lock_path!r} of store {store_path!r}: "
            f"{exc.strerror or exc}"
        ) from None
    try:
        _wait_for_lock(fd, store_path, lock_path, timeout, on_wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        close_lock_fd(fd)
        raise
    return fd


def _wait_for_lock(
    fd: int,
    store_path: str,
    lock_path: str,
    timeout: float,
    on_wait: Callable[[str], None] | None,
) -> None:
    # flock with LOCK_NB in a loop rather than a blocking flock: a blocking call cannot
    # be given a deadline, and the user is told once that we wait, and for whom.
    deadline = time.monotonic() + max(timeout, 0.0)
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = _lock_holder(fd)
        left = deadline - time.monotonic()
        if left <= 0:
            waited = f"; waited {timeout:g} s" if timeout > 0 else ""
            raise StoreLockedError(
                f"store {store_path!r} is locked by another venv-dedupe run (pid {holder}, "
                f"lock file {lock_path!r}){waited}; try again when it has finished"
            )
        if not told and on_wait is not None:
            on_wait(
                f"waiting up to {timeout:g} s for the lock of store {store_path!r}, "
                f"held by pid {holder} (lock file {lock_path!r})"
            )
            told = True
        time.sleep(min(LOCK_POLL_SECONDS, left))


def _lock_holder(fd: int) -> str:
    """The pid the lock's holder wrote into the lock file ("unknown" in the instant
    between its flock and its write)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
