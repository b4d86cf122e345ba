"""The steps every change of the executor is made of: a venv file's folder handle, the
re-stat right before a change, temp names (made, and removed while they are ours), its
failures as Failed, and the fault hook that tests call between steps."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import stat
from collections.abc import Callable
from typing import TypeVar

from ..execute import Failed
from ..hashing import same_file
from ..reasons import Reason
from ..store import TMP_PREFIX
from ..tree import At, FolderSwapped

__all__ = [
    "READ",
    "FaultHook",
    "at_temp_name",
    "check_unchanged",
    "fault_hook",
    "folder",
    "hook",
    "lstat",
    "os_failure",
    "remove_leftover",
    "remove_own",
]

# Every read of a venv file: never through a symlink, never blocking on a FIFO.
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

FaultHook = Callable[[str, At], None]

# Test hook: called with a stage name and the venv file acted on, at the start of each
# operation and between its steps, so fault tests can kill the process (or swap a folder)
# at the moments that matter (after the temp link, before the rename). One attribute for
# every module of dedupe.link: tests set dedupe.link.steps.fault_hook.
fault_hook: FaultHook | None = None

T = TypeVar("T")


# Temp names: a random part drawn once per process (names stay unguessable; a forked
# worker draws its own) and a counter, so a name costs no system call. A name that
# exists already is never reused: the link or create fails with EEXIST, and the next
# number is taken.
_token = secrets.token_hex(8)
_numbers = itertools.count()


def _new_token() -> None:
    global _token
    _token = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_token)


def _temp_name() -> str:
    return f"{TMP_PREFIX}{_token}.{next(_numbers):x}"


def at_temp_name(make: Callable[[str], T]) -> tuple[str, T]:
    """(tmp, make(tmp)) for the first temp name that make does not find taken
    (FileExistsError)."""
    while True:
        tmp = _temp_name()
        try:
            return tmp, make(tmp)
        except FileExistsError:
            continue


def hook(stage: str, at: At) -> None:
    if fault_hook is not None:
        fault_hook(stage, at)


def os_failure(exc: OSError, what: str) -> Failed:
    return Failed(Reason.LINK_FAILED, f"{what}: {exc.strerror or exc}", error=True)


def folder(at: At) -> tuple[int, str]:
    """The handle of at's folder and at's name; a folder swapped since it was listed
    fails the action, and changes nothing."""
    try:
        return at.folder()
    except FolderSwapped:
        raise Failed(
            Reason.CHANGED_DURING_SCAN,
            f"{at.path!r}: a folder on its way was swapped during the scan",
            error=False,
        ) from None
    except OSError as exc:
        raise os_failure(exc, f"cannot open the folder of {at.path!r}") from None


def lstat(fd: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=fd, follow_symlinks=False)


def check_unchanged(fd: int, name: str, expected: os.stat_result, shown: str) -> None:
    # Re-stat right before touching the name: a file that moved since its bytes were
    # proven (pip replaced it, someone edited it) is left alone.
    try:
        now = lstat(fd, name)
    except OSError:
        raise Failed(Reason.CHANGED_DURING_SCAN, f"{shown!r} vanished", error=False) from None
    if not same_file(now, expected):
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{shown!r} changed after it was read", error=False
        )


def remove_own(fd: int, tmp: str, ino: int) -> None:
    """Remove the temp name only while it is the inode ino we put there (a link to an
    object, or a copy): after a swap back it may hold a file someone else wrote, which
    must never be deleted."""
    with contextlib.suppress(OSError):
        if lstat(fd, tmp).st_ino == ino:
            os.unlink(tmp, dir_fd=fd)


def remove_leftover(at: At) -> bool:
    """Remove a temp link that a killed run left in a venv folder; it is only ever a
    second name of an object (or a copy that was never swapped in)."""
    try:
        hook("leftover", at)
        fd, name = at.folder()
        if name.startswith(TMP_PREFIX) and stat.S_ISREG(lstat(fd, name).st_mode):
            hook("leftover-checked", at)
            os.unlink(name, dir_fd=fd)
            return True
    except OSError:
        pass
    return False
