"""Where a filesystem's store lives when no --store is given, and whether it can be made."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .names import DEFAULT_STORE_NAME

__all__ = ["can_create", "default_store_path", "mount_point", "nearest_existing", "user_store_path"]


def mount_point(path: str) -> str:
    """The mount point of the filesystem holding path (walking up until st_dev changes)."""
    path = os.path.realpath(path)
    device = os.lstat(path).st_dev
    while path != os.path.dirname(path):
        parent = os.path.dirname(path)
        if os.lstat(parent).st_dev != device:
            return path
        path = parent
    return path


def nearest_existing(path: str) -> str:
    """path, or its nearest ancestor that exists."""
    while not os.path.lexists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def _device_of_nearest(path: str) -> int | None:
    """st_dev of path or of its nearest existing ancestor."""
    try:
        return os.stat(nearest_existing(path)).st_dev
    except OSError:
        return None


def user_store_path(environ: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if environ is None else environ
    home = env.get("HOME") or str(Path.home())
    data = env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(data, "venv-dedupe", "store")


def default_store_path(venv_root: str, device: int) -> str:
    """The documented default: the user's data folder when it is on the venv's filesystem,
    else .venv-dedupe-store at that filesystem's mount point (as pnpm places its store)."""
    user = user_store_path()
    if _device_of_nearest(user) == device:
        return user
    return os.path.join(mount_point(venv_root), DEFAULT_STORE_NAME)


def can_create(path: str) -> OSError | None:
    """Why a store could not be created at path (checked without writing), or None."""
    probe = nearest_existing(path)
    if not os.access(probe, os.W_OK | os.X_OK):
        return OSError(errno.EACCES, os.strerror(errno.EACCES), probe)
    return None
