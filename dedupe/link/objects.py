"""Changes to the store's own files: its folders, the temp files a killed run left in it,
and what maintenance decides (dedupe.maintenance: gc removes unused objects and empty
folders, verify quarantines damaged objects), each one file at a time.

Store paths are used as paths: the store is a private folder of the user running us
(dedupe.store.check_private), where no one else can swap a folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

__all__ = [
    "make_folders",
    "quarantine",
    "remove_empty_folder",
    "remove_store_leftover",
    "remove_unused",
]


def make_folders(folder: str) -> None:
    """Make folder and any missing parent inside the store with mode 0o755 whatever the
    umask: a group-writable store folder would let others plant objects."""
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)


def remove_store_leftover(path: str) -> bool:
    """Remove a temp file a killed run left in the store (a private folder of ours)."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
            return True
    except OSError:
        pass
    return False


def remove_unused(path: str, ino: int) -> os.stat_result | None:
    """Unlink the store object at path when it is still inode ino and no venv links to it
    (link count 1, checked right before the unlink); its stat when removed, else None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_ino != ino or st.st_nlink != 1:
        return None
    os.unlink(path)
    return st


def remove_empty_folder(path: str) -> bool:
    """rmdir, which itself refuses a folder that is not empty."""
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def quarantine(path: str, destination: str) -> None:
    """Move a damaged store object out of the store's object trees, to destination (a
    free name in the same store): one rename, so no later scan finds it under its name,
    and every venv file linked to it keeps its bytes."""
    make_folders(os.path.dirname(destination))
    if os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), destination)
    os.rename(path, destination)
