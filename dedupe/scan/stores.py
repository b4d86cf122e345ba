"""The store of each filesystem that holds venvs, for one scan."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..discovery import Venv
from ..errors import StoreError, StoreLockedError
from ..modes import LinkMode, mode_for
from ..store import (
    Store,
    StoreIndex,
    can_create,
    default_store_path,
    nearest_existing,
    open_store,
)
from .result import StoreReport

__all__ = ["Stores"]


class Stores:
    """The store of each filesystem that holds venvs, opened (or, in a dry run, looked at)."""

    def __init__(
        self,
        explicit: str | None,
        dry_run: bool,
        lock_timeout: float = 0.0,
        on_lock_wait: Callable[[str], None] | None = None,
        link_mode: LinkMode = LinkMode.AUTO,
    ) -> None:
        self.link_mode = link_mode
        self.modes: dict[int, LinkMode] = {}  # the mode each store's filesystem uses
        self.explicit = os.path.abspath(explicit) if explicit else None
        self.dry_run = dry_run
        self.lock_timeout = lock_timeout
        self.on_lock_wait = on_lock_wait
        self.by_device: dict[int, Store] = {}
        self.indexes: dict[int, StoreIndex] = {}
        self.unusable: dict[int, str] = {}
        self.paths: dict[int, str] = {}
        self.folder_bytes_before: dict[int, int] = {}

    def store_for(self, venv: Venv) -> str | None:
        """The venv's store, or None with the reason in self.unusable[device]."""
        device = venv.device
        if device in self.by_device or device in self.unusable:
            return self.unusable.get(device)
        path = self.explicit or default_store_path(venv.root, device)
        self.paths[device] = path
        try:
            reason = self._open(path, device)
        except StoreLockedError:
            raise
        except StoreError as exc:
            # An explicit --store that cannot be used is fatal; a default store of one
            # filesystem only costs that filesystem's venvs, which are skipped.
            if self.explicit:
                raise
            reason = str(exc)
        if reason is not None:
            self.unusable[device] = reason
        return reason

    def _open(self, path: str, device: int) -> str | None:
        existed = os.path.lexists(path)
        store = open_store(path, create=False)
        if store is None:
            if os.stat(nearest_existing(path)).st_dev != device:
                return self._elsewhere(path)
            problem = can_create(path) if self.dry_run else None
            if problem is not None:
                return self._cannot_create(path, problem)
            store = Store(path, device)  # not there yet: a real run makes it below
        elif store.device != device:
            return self._elsewhere(path)
        mode = mode_for(self.link_mode, nearest_existing(path))
        if isinstance(mode, str):
            return f"cannot use --link-mode reflink on the store {path!r}: {mode}"
        self.modes[device] = mode
        self.folder_bytes_before[device] = store.folder_bytes() if existed else 0
        if not self.dry_run:
            # Makes the store, or writes FORMAT into an empty folder made for it.
            store = open_store(path, create=True) or store
            store.lock(timeout=self.lock_timeout, on_wait=self.on_lock_wait)
        self.by_device[device] = store
        self.indexes[device] = store.load_index()
        return None

    def _elsewhere(self, path: str) -> str:
        if self.explicit:
            return (
                f"on another filesystem than the store {path!r}: hardlinks cannot cross "
                "filesystems; scan it with --store DIR on its own filesystem"
            )
        return f"the store {path!r} is not on this venv's filesystem; pass --store DIR on it"

    def _cannot_create(self, path: str, problem: OSError) -> str:
        return (
            f"no usable store for this filesystem: cannot create {path!r} "
            f"({problem.strerror}); pass --store DIR with a folder on the same filesystem"
        )

    def overhead(self, planner_folders: set[str]) -> int:
        """Allocated bytes the stores' folders grew by (or, in a dry run, would grow by)."""
        if not self.dry_run:
            return sum(
                store.folder_bytes() - self.folder_bytes_before[device]
                for device, store in self.by_device.items()
            )
        # Estimate: one filesystem block per new folder (exact on ext4; XFS and btrfs keep
        # small folders inline), plus the store folder and its FORMAT and lock files.
        total = 0
        for store in self.by_device.values():
            block = os.statvfs(nearest_existing(store.path)).f_bsize
            new = sum(1 for f in planner_folders if f.startswith(store.path + os.sep))
            if new and not os.path.isdir(store.path):
                new += 3  # the store folder, FORMAT, lock (objects/ is among the new)
            total += new * block
        return total

    def close(self) -> None:
        for store in self.by_device.values():
            store.unlock()

    def cow(self, device: int) -> bool:
        """Whether the store of the filesystem shares data by copy-on-write."""
        return self.modes.get(device) is LinkMode.REFLINK

    def locks(self) -> frozenset[int]:
        return frozenset(s.lock_fd for s in self.by_device.values() if s.lock_fd is not None)

    def reports(self, linked: bool) -> tuple[StoreReport, ...]:
        """linked: a real run's pass 2 walked venvs, so it may have added objects; else
        the store holds what its index listed when the run began."""
        return tuple(
            StoreReport(
                path=store.path,
                objects=len(store.inodes()) if linked else self.indexes[device].count,
                exists=os.path.isdir(store.path),
                scan_state_bytes=store.scan_state_bytes(),
                link_mode=self.modes[device].value,
            )
            for device, store in self.by_device.items()
        )
