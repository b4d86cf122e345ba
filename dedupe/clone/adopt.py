"""Before a clone: the scan of SRC, with the scan's own code, under its store's lock, that
adopts SRC's proven files (and their pycs) into the store, as a scan of SRC beside the
venv to come would. What it leaves is told by inode: which of SRC's files are shared."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .. import cow
from ..census import Census
from ..decisions import Adopt, ClonePyc, CreatePyc, Link, Observed, RewritePyc
from ..discovery import Venv, find_venvs
from ..errors import CloneError
from ..execute import Executor
from ..modes import LinkMode
from ..problems import Problem
from ..records import RecordHash
from ..scan import ScanResult
from ..scan.run import Options, ScanRun
from ..scan.stores import Stores
from ..store import Store, StoreIndex, object_key
from ..tree import At

__all__ = ["Adoption", "Shared", "adopted", "find_venv"]

# Whether a file of SRC (its folder's handle, its name, its inode as its folder's listing
# gives it, its stat when asked for, the hash its RECORD line gives; None for a pyc)
# shares its store object. A hardlink store tells from the inode alone: no stat.
Shared = Callable[[int, str, int, Callable[[], os.stat_result], RecordHash | None], bool]


@dataclass(frozen=True, slots=True)
class Adoption:
    venv: Venv
    store: Store
    copy_on_write: bool
    result: ScanResult
    shared: Shared


def find_venv(root: str) -> Venv:
    """The venv at root (no other tree under it), or CloneError saying what it is not."""
    discovery = find_venvs([root])
    for venv in discovery.venvs:
        if venv.root == root:
            if venv.kind.value != "venv":
                raise CloneError(f"SRC {root!r} is a package tree ({venv.kind.value}), not a venv")
            return venv
    for path, reason in discovery.skipped:
        if path == root:
            raise CloneError(f"SRC {root!r} cannot be cloned: {reason}")
    raise CloneError(f"SRC {root!r} is not a venv (no pyvenv.cfg with a 'home' key)")


@contextmanager
def adopted(
    venv: Venv,
    store: str | None,
    dry_run: bool,
    lock_timeout: float,
    on_lock_wait: Callable[[str], None] | None,
) -> Iterator[Adoption]:
    """Scan SRC into its store (in a dry run: decide only), and hold the store's lock
    until the block ends, so that no other run changes a store object the clone links."""
    stores = Stores(store, dry_run, lock_timeout, on_lock_wait, LinkMode.AUTO)
    try:
        reason = stores.store_for(venv)
        if reason is not None:
            raise CloneError(f"SRC {venv.root!r}: {reason}")
        options = Options(dry_run=dry_run, share_pyc=True, full=False, jobs=1, progress=None)
        run = _AdoptingRun(options, stores, [venv])
        try:
            run.recover()
            run.remove_store_leftovers()
            run.examine()
            run.share()
            result = run.result([venv.root], [])
        finally:
            run.close()
        device = venv.device
        copy_on_write = stores.cow(device)
        yield Adoption(
            venv,
            stores.by_device[device],
            copy_on_write,
            result,
            _shared_test(stores, device, run.decided, dry_run or not run.changed, copy_on_write),
        )
    finally:
        stores.close()


def _shared_test(
    stores: Stores, device: int, decided: set[int], as_indexed: bool, copy_on_write: bool
) -> Shared:
    if copy_on_write:
        return _BlockSharing(stores.by_device[device], stores.indexes[device], decided).test
    # The file is a store object now: its inode is one of the store's. as_indexed: the
    # store is as its index says (a dry run, or a scan that changed nothing), and the
    # inodes the scan would make objects are those its decisions took.
    inodes = set(stores.indexes[device].inodes)
    inodes |= decided if as_indexed else stores.by_device[device].inodes()

    def is_object(
        fd: int,
        name: str,
        ino: int,
        st: Callable[[], os.stat_result],
        recorded: RecordHash | None,
    ) -> bool:
        return ino in inodes

    return is_object


class _BlockSharing:
    """Copy-on-write: each file keeps its inode, so a file is shared when this scan
    shared it (or, in a dry run, would), or when its blocks are its store object's (as
    the scan's planner tells a file already shared, by FIEMAP: no read). A file written
    in place since it was shared holds blocks of its own: it is not shared."""

    def __init__(self, store: Store, index: StoreIndex, decided: set[int]) -> None:
        self._store = store
        self._index = index
        self._decided = decided
        self._extents: dict[str, list[cow.Extent]] = {}

    def test(
        self,
        fd: int,
        name: str,
        ino: int,
        stat: Callable[[], os.stat_result],
        recorded: RecordHash | None,
    ) -> bool:
        try:
            # The reflink share needs the stat too: it checks the file is still this one.
            st = stat()
            if st.st_ino != ino:
                return False  # replaced since its folder was listed: not what was proven
            if ino in self._decided:
                return True
            mine = cow.file_extents(name, dir_fd=fd)
            if recorded is None:
                # A pyc: no recorded digest names its object, so any shared block counts
                # (a whole clone of a hash-based object, or all blocks but its header's).
                return cow.any_shared(mine)
            key = object_key(recorded.algorithm, recorded.digest, st, cow=True)
            generations = self._index.objects.get(key, [])
            return any(
                cow.same_blocks(mine, self._object_extents(self._store.object_path(key, gen)))
                for gen, _ino in generations
            )
        except OSError:
            return False

    def _object_extents(self, path: str) -> list[cow.Extent]:
        found = self._extents.get(path)
        if found is None:
            found = self._extents[path] = cow.file_extents(path)
        return found


class _AdoptingRun(ScanRun):
    """A scan of SRC alone that counts the clone to come as another holder of each of
    its contents, so its files that occur once are adopted too; and that notes the
    inodes its decisions take (what a dry run would have made shared)."""

    def __init__(self, options: Options, stores: Stores, venvs: list[Venv]) -> None:
        self.decided: set[int] = set()  # before the base class makes its first executor
        self.changes: list[bool] = []  # one per change an executor made (or would make)
        super().__init__(options, stores, venvs)
        self.census = Census(stores.indexes, clones=1)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def new_executor(self) -> Executor:
        return _Noting(super().new_executor(), self.decided, self.changes)


class _Noting:
    """An executor that notes the inode of each file it adopts or links, then hands the
    decision on."""

    def __init__(self, inner: Executor, decided: set[int], changes: list[bool]) -> None:
        self._inner = inner
        self._decided = decided
        self._changes = changes

    def adopt(self, action: Adopt) -> Observed | None:
        observed = self._inner.adopt(action)
        self._decided.add(action.st.st_ino)
        self._changes.append(True)
        return observed

    def link(self, action: Link) -> Observed | None:
        observed = self._inner.link(action)
        self._decided.add(action.st.st_ino)
        self._changes.append(True)
        return observed

    def create_pyc(self, action: CreatePyc) -> Observed | None:
        self._changes.append(True)
        return self._inner.create_pyc(action)

    def rewrite_pyc(self, action: RewritePyc) -> int | None:
        new = self._inner.rewrite_pyc(action)
        self._changes.append(True)
        return new

    def clone_pyc(self, action: ClonePyc) -> int | None:
        new = self._inner.clone_pyc(action)
        self._decided.add(action.st.st_ino)
        self._changes.append(True)
        return new

    def remove_leftover(self, at: At) -> bool:
        return self._inner.remove_leftover(at)

    def remove_store_leftover(self, path: str) -> bool:
        return self._inner.remove_store_leftover(path)

    def close(self) -> list[Problem]:
        return self._inner.close()
