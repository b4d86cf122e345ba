"""An opened store folder: where its objects are, what it holds (its index), its size."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import StoreError
from ..lockfds import close_lock_fd
from .lock import take
from .names import (
    CACHE_DIR,
    JOURNAL_DIR,
    TMP_PREFIX,
    TRASH_DIR,
    ObjectKey,
    PycKey,
    parse_object_name,
    parse_pyc_name,
)

__all__ = ["Store", "StoreIndex", "saved_bytes"]

# The store's folders that hold the scan's own state, not objects.
_SCAN_STATE = (CACHE_DIR, JOURNAL_DIR, TRASH_DIR)


@dataclass(slots=True)
class StoreIndex:
    """What the store held when the run began: objects by key and their inode numbers."""

    objects: dict[ObjectKey, list[tuple[int, int]]]  # key -> [(generation, inode)]
    inodes: set[int]  # of source and pyc objects
    pycs: dict[PycKey, list[tuple[int, int]]] = field(default_factory=dict)
    sources_by_inode: dict[int, tuple[ObjectKey, int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.inodes)


class Store:
    """An opened store folder on one filesystem."""

    def __init__(self, path: str, device: int) -> None:
        self.path = path
        self.device = device
        self._lock_fd: int | None = None
        # The temp files of objects/ and pyc/ that load_index listed, under the lock in a
        # real run: leftovers() needs no second walk of every object folder.
        self._temps: list[str] | None = None

    def object_path(self, key: ObjectKey, generation: int) -> str:
        return os.path.join(self.path, key.relpath(generation))

    def pyc_path(self, key: PycKey, generation: int) -> str:
        return os.path.join(self.path, key.relpath(generation))

    def _iter(
        self, top: str, temps: list[str] | None = None
    ) -> Iterator[tuple[str, str, os.DirEntry[str]]]:
        tree = os.path.join(self.path, top)
        for algorithm in _listdir(tree):
            alg_dir = os.path.join(tree, algorithm)
            for shard in _listdir(alg_dir):
                try:
                    it = os.scandir(os.path.join(alg_dir, shard))
                except NotADirectoryError:
                    continue
                except OSError as exc:
                    raise StoreError(
                        f"cannot list the store folder {exc.filename!r}: {exc.strerror}"
                    ) from None
                with it:
                    for entry in it:
                        if entry.is_file(follow_symlinks=False):
                            if temps is not None and entry.name.startswith(TMP_PREFIX):
                                temps.append(entry.path)
                            yield algorithm, shard, entry

    def iter_all(self) -> Iterator[tuple[ObjectKey | PycKey, int, os.DirEntry[str]]]:
        """Source objects, then pyc objects."""
        yield from self.iter_objects()
        yield from self.iter_pycs()

    def leftovers(self) -> list[str]:
        """Temp files a killed run left in the store: a pyc object, a memo or a journal
        entry half written, a replaced venv file in the trash."""
        found = self._temps
        self._temps = None
        if found is not None and self._lock_fd is not None:
            # Recovery since the index may have finished one.
            found = [path for path in found if os.path.lexists(path)]
        else:
            found = [
                entry.path
                for top in ("objects", "pyc")
                for _algorithm, _shard, entry in self._iter(top)
                if entry.name.startswith(TMP_PREFIX)
            ]
        for top, prefix in ((CACHE_DIR, TMP_PREFIX), (JOURNAL_DIR, TMP_PREFIX), (TRASH_DIR, "")):
            folder = os.path.join(self.path, top)
            with contextlib.suppress(OSError):
                found += [
                    os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(prefix)
                ]
        return found

    def iter_objects(
        self, temps: list[str] | None = None
    ) -> Iterator[tuple[ObjectKey, int, os.DirEntry[str]]]:
        """Source objects (not pycs): key, generation, directory entry. temps: where to
        note the temp files met on the way."""
        for algorithm, shard, entry in self._iter("objects", temps):
            parsed = parse_object_name(algorithm, shard, entry.name)
            if parsed is not None:
                yield parsed[0], parsed[1], entry

    def iter_pycs(
        self, temps: list[str] | None = None
    ) -> Iterator[tuple[PycKey, int, os.DirEntry[str]]]:
        for algorithm, shard, entry in self._iter("pyc", temps):
            parsed = parse_pyc_name(algorithm, shard, entry.name)
            if parsed is not None:
                yield parsed[0], parsed[1], entry

    def load_index(self) -> StoreIndex:
        # scandir gives d_ino without a stat: an unchanged rerun recognises linked files
        # from inode numbers alone (DESIGN.md invariant 8).
        objects: dict[ObjectKey, list[tuple[int, int]]] = {}
        inodes: set[int] = set()
        pycs: dict[PycKey, list[tuple[int, int]]] = {}
        sources_by_inode: dict[int, tuple[ObjectKey, int]] = {}
        temps: list[str] = []
        for key, generation, entry in self.iter_objects(temps):
            objects.setdefault(key, []).append((generation, entry.inode()))
            inodes.add(entry.inode())
            sources_by_inode[entry.inode()] = (key, generation)
        for pkey, generation, entry in self.iter_pycs(temps):
            pycs.setdefault(pkey, []).append((generation, entry.inode()))
            inodes.add(entry.inode())
        self._temps = temps if self._lock_fd is not None else None
        for generations in [*objects.values(), *pycs.values()]:
            generations.sort()
        return StoreIndex(objects, inodes, pycs, sources_by_inode)

    def inodes(self) -> set[int]:
        """The inode numbers of every object, source and pyc: all an inventory needs."""
        return {entry.inode() for _key, _generation, entry in self.iter_all()}

    def folder_bytes(self) -> int:
        """Allocated bytes of the store's own folders and files, objects excluded: what the
        store costs beside the objects, so that reclaimed bytes can be squared with du.
        The scan's own state (memos, journal, trash folder) is left out: see
        scan_state_bytes."""
        # os.walk would build a list of every object's name just to find no folder among
        # them: each listing is read here for its folders only (d_type, no stat).
        total = 0
        with contextlib.suppress(OSError):
            total += os.lstat(self.path).st_blocks * 512
        folders = [self.path]
        while folders:
            folder = folders.pop()
            top = folder == self.path
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError:
                continue
            for entry in entries:
                try:
                    is_folder = entry.is_dir()
                    if is_folder and (entry.is_symlink() or (top and entry.name in _SCAN_STATE)):
                        continue  # not walked into (and not a file either)
                    if is_folder or top:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    continue
                if is_folder:
                    folders.append(entry.path)
        return total

    def scan_state_bytes(self) -> int:
        """Allocated bytes of the scan's memos (scan-cache/), journal and trash folder:
        they change with every run that walks a venv, whatever it links."""
        total = 0
        for top in _SCAN_STATE:
            folder = os.path.join(self.path, top)
            with contextlib.suppress(OSError):
                total += os.lstat(folder).st_blocks * 512
                for entry in os.scandir(folder):
                    with contextlib.suppress(OSError):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
        return total

    def lock(self, *, timeout: float = 0.0, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the store's lock for this process (see dedupe.store.lock.take)."""
        self._lock_fd = take(self.path, timeout=timeout, on_wait=on_wait)

    def clock_ns(self) -> int:
        """The filesystem's time now: the ctime it gives the lock file when we touch it
        (under the lock, so in a real run only)."""
        assert self._lock_fd is not None, "the store is not locked"
        os.utime(self._lock_fd)
        return os.fstat(self._lock_fd).st_ctime_ns

    def unlock(self) -> None:
        if self._lock_fd is not None:
            close_lock_fd(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    @property
    def lock_fd(self) -> int | None:
        return self._lock_fd


def saved_bytes(st: os.stat_result) -> int:
    """Allocated bytes an object saves: its n - 1 venv names share one inode that n - 1
    copies would otherwise need (the store's own name is the nth)."""
    return max(st.st_nlink - 2, 0) * st.st_blocks * 512


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StoreError(f"cannot list the store folder {path!r}: {exc.strerror}") from None
