"""The scan: discovery -> inventory -> census -> plan -> link, and its result."""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from .census import Census, census_key, census_prefix
from .discovery import Venv, default_roots, find_venvs
from .errors import StoreError, StoreLockedError, UsageError
from .execute import DryRun, Executor, Failed, TooManyLinks
from .inventory import (
    BadInput,
    Candidate,
    Leftover,
    Pyc,
    Shared,
    Skipped,
    inventory,
)
from .link import Hardlinks
from .memo import CANDIDATE, Memo, Memos, Trace
from .plan import (
    Adopt,
    AlreadyShared,
    CreatePyc,
    Decision,
    Link,
    Planner,
    Refused,
    RewritePyc,
    SourceObject,
    Unique,
)
from .problems import Problem, VenvSkip
from .proof import Disk
from .reasons import Reason
from .store import (
    TRASH_DIR,
    Store,
    StoreIndex,
    can_create,
    default_store_path,
    nearest_existing,
    open_store,
)
from .tree import At, Tree
from .workers import WorkerError, can_fork, default_jobs, run_each, run_parts

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True, slots=True)
class PycReport:
    """What happened to the .pyc files beside the sources RECORD lists."""

    scanned: int
    linked: int  # replaced by a link to the group's shared pyc object
    stored: int  # became a shared pyc object (or a new one was written for the group)
    already_shared: int
    rewritten: int  # given a private copy whose header names the shared source's mtime
    kept_private: int  # --no-share-pyc: valid as they are, left private
    bytes_reclaimed: int
    apparent_bytes_reclaimed: int
    skipped: dict[str, int]  # left as they are, by reason


@dataclass(frozen=True, slots=True)
class VenvReport:
    path: str
    unchanged: bool  # as the last run left it: pass 1 took it from its memo
    files_scanned: int
    files_eligible: int
    files_linked: int
    files_already_shared: int
    files_stored: int
    bytes_reclaimed: int  # all files, pycs included
    apparent_bytes_reclaimed: int
    skipped: dict[str, int]
    pyc: PycReport


@dataclass(frozen=True, slots=True)
class StoreReport:
    """The store as the scan leaves it. What its objects save and how many no venv uses
    are dedupe.maintenance.status's to tell: they move with every venv removed or pip
    uninstall anywhere, out of a scan's sight, so only a stat of every object knows them."""

    path: str
    objects: int  # from the folder listing (d_ino), not a stat per object
    exists: bool
    scan_state_bytes: int  # the scan's memos and trash folder, not in store_overhead_bytes


@dataclass(frozen=True, slots=True)
class ScanResult:
    dry_run: bool
    roots: tuple[str, ...]
    venvs: tuple[VenvReport, ...]
    venvs_unchanged: int  # pass 1 took them from an earlier run's memo
    skipped_venvs: tuple[VenvSkip, ...]
    stores: tuple[StoreReport, ...]
    files_scanned: int
    files_eligible: int
    files_linked: int
    files_already_shared: int
    files_stored: int
    files_unique: int
    files_linked_without_gain: int
    leftovers_removed: int
    bytes_reclaimed: int  # all files, pycs included
    apparent_bytes_reclaimed: int
    pyc: PycReport
    store_overhead_bytes: int  # the store's new folders: measured, or estimated in a dry run
    # (the scan's memos are apart: StoreReport.scan_state_bytes)
    skipped: dict[str, int]
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]


@dataclass(slots=True)
class _Tally:
    """Mutable counts for one venv while the scan runs."""

    path: str
    scanned: int = 0
    eligible: int = 0
    linked: int = 0
    shared: int = 0
    stored: int = 0
    unique: int = 0
    no_gain: int = 0
    reclaimed: int = 0
    apparent: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    candidate_keys: array = field(default_factory=lambda: array("Q"))  # type: ignore[type-arg]
    pyc_work: bool = False  # a shared source has a pyc that is not shared yet
    pyc: Counter[str] = field(default_factory=Counter)
    pyc_skipped: Counter[str] = field(default_factory=Counter)
    unchanged: bool = False  # pass 1 took it from the memo of an earlier run

    def memo(self, warnings: tuple[tuple[str, str], ...], candidates: bytes) -> Memo:
        """Pass 1's result, as recall takes it back."""
        return Memo(
            self.scanned,
            self.eligible,
            self.shared,
            self.pyc["scanned"],
            self.pyc["shared"],
            self.pyc_work,
            dict(self.skipped),
            warnings,
            candidates,
        )

    def merge(self, part: _Tally) -> None:
        """Add what a part of pass 2 counted (from zero) for this venv."""
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(part, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif type(mine) is int:
                setattr(self, f.name, mine + theirs)

    def recall(self, memo: Memo, census: Census, device: int) -> None:
        """Take pass 1's result for the venv, and count its candidates in the census."""
        self.scanned += memo.scanned
        self.eligible += memo.eligible
        self.shared += memo.shared
        self.skipped.update(memo.skipped)
        self.pyc["scanned"] += memo.pyc_scanned
        self.pyc["shared"] += memo.pyc_shared
        self.pyc_work = memo.pyc_work
        for ckey, ino, multi_link in memo.iter_candidates():
            census.add(ckey, device, ino, multi_link)
            self.candidate_keys.append(census_prefix(ckey))

    def pyc_report(self) -> PycReport:
        return _pyc_report(self.pyc, self.pyc_skipped)

    def report(self) -> VenvReport:
        return VenvReport(
            self.path,
            self.unchanged,
            self.scanned,
            self.eligible,
            self.linked,
            self.shared,
            self.stored,
            self.reclaimed + self.pyc["reclaimed"],
            self.apparent + self.pyc["apparent"],
            dict(sorted(self.skipped.items())),
            self.pyc_report(),
        )


def _pyc_report(counts: Counter[str], skipped: Counter[str]) -> PycReport:
    return PycReport(
        counts["scanned"],
        counts["linked"],
        counts["stored"],
        counts["shared"],
        counts["rewritten"],
        counts["kept"],
        counts["reclaimed"],
        counts["apparent"],
        dict(sorted(skipped.items())),
    )


class _Counter:
    """Progress of one phase: venvs done out of total, told to the progress callback. With
    parts, every part walks every venv and ticks for it: parts ticks count one venv."""

    def __init__(self, phase: str, total: int, progress: Progress | None, parts: int = 1) -> None:
        self.phase, self.total, self.progress, self.parts = phase, total, progress, parts
        self.ticks = 0

    def tick(self, _step: object = None) -> None:
        self.ticks += 1
        if self.progress and self.ticks % self.parts == 0:
            self.progress(self.phase, self.ticks // self.parts, self.total)


@dataclass(frozen=True, slots=True)
class _Linked:
    """What one part of pass 2 did: counts per venv (from zero), errors, and the rest."""

    tallies: list[_Tally]
    errors: list[Problem]
    settled_pycs: set[int]
    new_folders: set[str]


class _Stores:
    """The store of each filesystem that holds venvs, opened (or, in a dry run, looked at)."""

    def __init__(
        self,
        explicit: str | None,
        dry_run: bool,
        lock_timeout: float = 0.0,
        on_lock_wait: Callable[[str], None] | None = None,
    ) -> None:
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
            )
            for device, store in self.by_device.items()
        )


P = ParamSpec("P")
R = TypeVar("R")


def _collector_paused(run: Callable[P, R]) -> Callable[P, R]:
    """Run without Python's cyclic garbage collector. A scan allocates millions of small
    objects and makes no reference cycles (a scan under gc.disable() leaves nothing for
    gc.collect() to find), so every collection, the full ones walking each object the
    planner keeps, was pure cost: about 5% of a first run's CPU time."""

    @functools.wraps(run)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return run(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


@_collector_paused
def scan(
    roots: Sequence[str | os.PathLike[str]] = (),
    *,
    store: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    share_pyc: bool = True,
    full: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 0.0,
    on_lock_wait: Callable[[str], None] | None = None,
) -> ScanResult:
    """Deduplicate every venv under roots (the well-known venv homes when empty).

    With dry_run, decide and count exactly as a real run would, changing nothing. With
    share_pyc (the default), the .pyc files of shared sources are shared too; without it
    they stay private, but are kept valid for their newly linked source. A venv whose
    folders and RECORD files are as an earlier run left them is taken from that run's
    memo instead of being walked (see dedupe.memo); full walks every venv. The work is
    shared out between jobs processes (default: one per CPU, see dedupe.workers). When another
    run holds a store's lock, wait up to lock_timeout seconds (telling on_lock_wait once),
    then raise StoreLockedError.
    """
    if jobs is None:
        jobs = default_jobs()
    elif jobs < 1:
        raise UsageError(f"jobs must be at least 1, not {jobs}")
    elif not can_fork():
        jobs = 1  # parts in one process would only repeat the walks
    root_list = [os.fspath(r) for r in roots] or [str(p) for p in default_roots()]
    if not root_list:
        raise UsageError("no roots given and none of the well-known venv folders exists")
    discovery = find_venvs(root_list)
    stores = _Stores(
        os.fspath(store) if store is not None else None, dry_run, lock_timeout, on_lock_wait
    )
    skipped_venvs = [VenvSkip(p, r) for p, r in discovery.skipped]
    warnings: list[Problem] = []
    try:
        venvs: list[Venv] = []
        for venv in discovery.venvs:
            reason = stores.store_for(venv)
            if reason is None:
                venvs.append(venv)
            else:
                skipped_venvs.append(VenvSkip(venv.root, reason))
        tallies = [_Tally(v.root) for v in venvs]
        census = Census(stores.indexes)
        memos = {device: Memos(store_) for device, store_ in stores.by_device.items()}
        leftovers = 0

        # The one place a dry run differs from a real run, but for the memos a real run
        # keeps and the store it makes: which executor carries the decisions out.
        def new_executor() -> Executor:
            if dry_run:
                return DryRun()
            trash = {d: os.path.join(s.path, TRASH_DIR) for d, s in stores.by_device.items()}
            return Hardlinks(trash)

        cleaner = new_executor()  # of leftovers: it frees nothing, and needs no close()
        for store_ in stores.by_device.values():
            leftovers += sum(map(cleaner.remove_store_leftover, store_.leftovers()))

        # Pass 1: RECORD, directory listings and stat only; no file is read. A venv whose
        # folders and RECORDs are as an earlier run left them is taken from its memo; the
        # others are walked, shared out between the workers.
        warned: dict[int, tuple[tuple[str, str], ...]] = {}
        walk: list[int] = []
        examined = _Counter("examine", len(venvs), progress)
        for i, venv in enumerate(venvs):
            memo = None if full else memos[venv.device].load(venv, share_pyc)
            inodes = stores.indexes[venv.device].inodes
            if memo is not None and any(ino in inodes for _, ino, _ in memo.iter_candidates()):
                memo = None  # a remembered candidate became a store object since
            if memo is None:
                walk.append(i)
            else:
                tallies[i].unchanged = True
                tallies[i].recall(memo, census, venv.device)
                warned[i] = memo.warnings
                examined.tick()

        def examine(i: int) -> tuple[int, Memo, int]:
            venv = venvs[i]
            walker = _Walk(
                venv,
                stores.indexes[venv.device].inodes,
                share_pyc,
                None if dry_run else memos[venv.device],
            )
            with walker.tree:
                memo = walker.run()
                removed = sum(map(cleaner.remove_leftover, walker.leftovers))
            return i, memo, removed

        def walked(step: tuple[int, Memo, int]) -> None:
            nonlocal leftovers
            i, memo, removed = step
            tallies[i].recall(memo, census, venvs[i].device)
            warned[i] = memo.warnings
            leftovers += removed
            examined.tick()

        run_each(examine, walk, jobs, walked, stores.locks())
        for i in sorted(warned):
            warnings += [Problem(path, message) for path, message in warned[i]]

        # Pass 2: only venvs that hold a file worth linking, or a shared source's pyc
        # that is not shared yet, are walked again. Each worker takes the files of some
        # sizes (so every copy of a content, and every name of an inode, meets one
        # planner), in the same order as one process would: the same decisions.
        worthwhile = census.worthwhile_prefixes()
        todo = [
            (venv, tally)
            for venv, tally in zip(venvs, tallies, strict=True)
            if tally.pyc_work or any(k in worthwhile for k in tally.candidate_keys)
        ]
        del worthwhile  # before the workers fork: freed later, its pages would be copied
        for tally in tallies:
            tally.candidate_keys = array("Q")
        link_jobs = jobs if todo else 0
        linked = _Counter("link", len(todo), progress, max(link_jobs, 1))

        def link_part(part: int, emit: Callable[[None], None]) -> _Linked:
            planner = Planner(census, stores.by_device, stores.indexes, Disk())
            run = _Run(planner, new_executor(), share_pyc)
            counts = [_Tally(venv.root) for venv, _tally in todo]
            share = (part, link_jobs) if link_jobs > 1 else None
            try:
                for (venv, _tally), tally in zip(todo, counts, strict=True):
                    store_ = stores.by_device[venv.device]
                    inodes = stores.indexes[venv.device].inodes
                    for item in inventory(venv, inodes, venv.device, share=share):
                        if isinstance(item, Candidate):
                            run.candidate(store_, item, tally)
                        elif isinstance(item, Shared) and any(
                            p.ino not in inodes for p in item.pycs
                        ):
                            run.shared_source(store_, item, tally, inodes)
                    emit(None)
            finally:
                run.close()
            return _Linked(counts, run.errors, run.settled_pycs, planner.new_folders)

        errors: list[Problem] = []
        settled_pycs: set[int] = set()
        new_folders: set[str] = set()
        for result in run_parts(link_part, link_jobs, linked.tick, stores.locks()):
            for (_venv, tally), counts in zip(todo, result.tallies, strict=True):
                tally.merge(counts)
            errors += result.errors
            settled_pycs |= result.settled_pycs
            new_folders |= result.new_folders
        if not dry_run and todo:
            warnings += _renew_memos(todo, stores, memos, share_pyc, settled_pycs, jobs)
        for tally in tallies:
            tally.unique = tally.eligible - tally.shared - tally.linked - tally.stored
            # Pycs not accounted for above belong to sources that are not shared.
            left = (
                tally.pyc["scanned"]
                - sum(tally.pyc[k] for k in ("linked", "stored", "shared", "rewritten", "kept"))
                - sum(tally.pyc_skipped.values())
            )
            if left:
                tally.pyc_skipped[Reason.PYC_SOURCE_NOT_SHARED] += left
        overhead = stores.overhead(new_folders)
        store_reports = stores.reports(linked=not dry_run and bool(todo))
    finally:
        stores.close()

    skipped: Counter[str] = Counter()
    pyc: Counter[str] = Counter()
    pyc_skipped: Counter[str] = Counter()
    for tally in tallies:
        skipped.update(tally.skipped)
        pyc.update(tally.pyc)
        pyc_skipped.update(tally.pyc_skipped)
    return ScanResult(
        dry_run=dry_run,
        roots=tuple(root_list),
        venvs=tuple(t.report() for t in tallies),
        venvs_unchanged=sum(t.unchanged for t in tallies),
        skipped_venvs=tuple(skipped_venvs),
        stores=store_reports,
        files_scanned=sum(t.scanned for t in tallies),
        files_eligible=sum(t.eligible for t in tallies),
        files_linked=sum(t.linked for t in tallies),
        files_already_shared=sum(t.shared for t in tallies),
        files_stored=sum(t.stored for t in tallies),
        files_unique=sum(t.unique for t in tallies),
        files_linked_without_gain=sum(t.no_gain for t in tallies),
        leftovers_removed=leftovers,
        bytes_reclaimed=sum(t.reclaimed for t in tallies) + pyc["reclaimed"],
        apparent_bytes_reclaimed=sum(t.apparent for t in tallies) + pyc["apparent"],
        pyc=_pyc_report(pyc, pyc_skipped),
        store_overhead_bytes=overhead,
        skipped=dict(sorted(skipped.items())),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


class _Walk:
    """Pass 1 over one walked venv: its counts, candidates and the temp files a killed
    run left in it. With memos (a real run), stamp what it looks at and keep a memo."""

    def __init__(
        self,
        venv: Venv,
        inodes: set[int],
        share_pyc: bool,
        memos: Memos | None,
        settled_pycs: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        self.venv, self.inodes, self.share_pyc = venv, inodes, share_pyc
        self.memos = memos
        self.settled_pycs = settled_pycs  # pycs pass 2 leaves alone for good: no pyc work
        self.tree = Tree(venv.root)  # the caller closes it, once done with the leftovers
        self.leftovers: list[At] = []

    def run(self) -> Memo:
        venv, inodes = self.venv, self.inodes
        tally = _Tally(venv.root)
        trace = clock = None
        if self.memos is not None:
            try:
                clock = self.memos.store.clock_ns()  # before the first stamp
                trace = Trace(venv.root, self.tree.lstat)
            except OSError:
                pass  # no memo: the next run walks this venv again
        warnings: list[tuple[str, str]] = []
        candidates = bytearray()
        pycs = pycs_shared = 0
        for item in inventory(venv, inodes, venv.device, trace, tree=self.tree):
            match item:
                case Candidate(st=st, key=key):
                    candidates += CANDIDATE.pack(
                        census_key(st.st_dev, key), st.st_ino, st.st_nlink > 1
                    )
                    tally.eligible += 1
                case Shared():
                    tally.eligible += 1
                    tally.shared += 1
                    # Unshared pycs of a shared source: Python wrote them since. Without
                    # pyc sharing there is nothing to do: the scan that linked the source
                    # kept its pycs valid, and Python writes valid ones.
                    tally.pyc_work |= self.share_pyc and any(
                        p.ino not in inodes and p.ino not in self.settled_pycs for p in item.pycs
                    )
                case Skipped(reason=reason):
                    tally.skipped[reason] += 1
                case BadInput(path=path, message=message):
                    warnings.append((path, message))
                    continue
                case Leftover(at=at):
                    self.leftovers.append(at)
                    continue
            # A source file: one of Candidate, Shared, Skipped.
            tally.scanned += 1
            if item.pycs:
                pycs += len(item.pycs)
                pycs_shared += sum(1 for p in item.pycs if p.ino in inodes)
        tally.pyc["scanned"] += pycs
        tally.pyc["shared"] += pycs_shared
        memo = tally.memo(tuple(warnings), bytes(candidates))
        if self.memos is not None and trace is not None and clock is not None:
            if self.leftovers:
                self.memos.forget(venv)  # removing them changes the venv: walk it next time
            else:
                self.memos.save(venv, self.share_pyc, trace, clock, memo)
        return memo


def _renew_memos(
    todo: list[tuple[Venv, _Tally]],
    stores: _Stores,
    memos: dict[int, Memos],
    share_pyc: bool,
    settled_pycs: set[int],
    jobs: int,
) -> list[Problem]:
    """Pass 2 linked in these venvs, moving their folders: walk them once more for their
    memos, knowing the objects this run made and the pycs it left alone."""
    problems = []
    inodes: dict[int, set[int]] = {}
    for device in {venv.device for venv, _tally in todo}:
        store = stores.by_device[device]
        try:
            inodes[device] = store.inodes()
        except (OSError, StoreError) as exc:
            problems.append(Problem(store.path, f"memos for the next run not kept: {exc}"))
    renew = [venv for venv, _tally in todo if venv.device in inodes]

    def walk(venv: Venv) -> None:
        walker = _Walk(venv, inodes[venv.device], share_pyc, memos[venv.device], settled_pycs)
        with walker.tree:
            walker.run()

    try:
        run_each(walk, renew, jobs, locks=stores.locks())
    except (WorkerError, OSError, StoreError) as exc:
        # Everything is linked and counted: only the next run's shortcut is lost.
        problems.append(Problem(renew[0].root, f"memos for the next run not kept: {exc}"))
    return problems


# Why pass 2 leaves a pyc alone for as long as the pyc is there: no pyc work for memos.
_PYC_SETTLED = frozenset(
    {Reason.PYC_STALE, Reason.PYC_HASH_BASED, Reason.PYC_UNRECOGNISED, Reason.XATTRS_DIFFER}
)


class _Run:
    """Pass 2: asks the planner, hands decisions to the executor, counts."""

    def __init__(self, planner: Planner, executor: Executor, share_pyc: bool) -> None:
        self.planner = planner
        self.executor = executor
        self.share_pyc = share_pyc
        self.errors: list[Problem] = []
        self.settled_pycs: set[int] = set()  # left alone for a reason the next run keeps

    def close(self) -> None:
        """Wait for the executor's work under way (du must see replaced copies gone)."""
        self.errors += self.executor.close()

    def candidate(self, store: Store, candidate: Candidate, tally: _Tally) -> None:
        ckey = census_key(candidate.st.st_dev, candidate.key)
        for _attempt in range(2):
            decision = self.planner.decide(candidate, ckey)
            if isinstance(decision, Unique):
                return
            if isinstance(decision, AlreadyShared):
                tally.shared += 1
                return
            if isinstance(decision, Refused):
                self._refused(decision, tally.skipped)
                tally.eligible -= 1
                return
            try:
                self._execute(decision)
            except TooManyLinks:
                self.planner.undo(decision, candidate)
                self.planner.object_full(candidate)
                continue  # decide again: the planner starts a new object for this content
            except Failed as exc:
                self.planner.undo(decision, candidate)
                self._failed(candidate.path, exc, tally.skipped)
                tally.eligible -= 1
                return
            if isinstance(decision, Adopt):
                tally.stored += 1
            elif isinstance(decision, Link):
                tally.linked += 1
                if decision.frees:
                    tally.reclaimed += decision.st.st_blocks * 512
                    tally.apparent += decision.st.st_size
                else:
                    tally.no_gain += 1
            source = self.planner.source_object(candidate)
            if source is not None:
                before = (candidate.st.st_mtime_ns, candidate.st.st_size)
                for pyc in candidate.pycs:
                    self._pyc(store, source, before, pyc, tally)
            return
        tally.eligible -= 1
        tally.skipped[Reason.LINK_FAILED] += 1
        self.errors.append(Problem(candidate.path, "store object keeps hitting the link limit"))

    def shared_source(self, store: Store, item: Shared, tally: _Tally, inodes: set[int]) -> None:
        """A source already linked in an earlier run whose pycs are not all shared: pycs
        Python wrote since (uv installs without --compile-bytecode) or new interpreters."""
        found = self.planner.indexed_source(store, item.ino)
        if found is None:
            return
        key, generation = found
        try:
            st = item.at.lstat()
        except OSError:
            return
        if st.st_ino != item.ino:
            return
        source = SourceObject(key, generation, st.st_mtime_ns, st.st_size)
        for pyc in item.pycs:
            if pyc.ino not in inodes:
                self._pyc(store, source, (st.st_mtime_ns, st.st_size), pyc, tally)

    def _pyc(
        self, store: Store, source: SourceObject, before: tuple[int, int], pyc: Pyc, tally: _Tally
    ) -> None:
        decisions = self.planner.decide_pyc(store, source, before, pyc, self.share_pyc)
        if not decisions:
            tally.pyc["kept"] += 1
        for decision in decisions:
            if isinstance(decision, Refused):
                self._refused(decision, tally.pyc_skipped)
                if decision.reason in _PYC_SETTLED:
                    self.settled_pycs.add(pyc.ino)
                return
            if isinstance(decision, AlreadyShared):
                tally.pyc["shared"] += 1
                return
            try:
                self._execute(decision)
            except (Failed, TooManyLinks) as exc:
                if isinstance(decision, (CreatePyc, Adopt)):
                    self.planner.undo_pyc(decision.object_path)
                self._pyc_unshared(source, before, pyc, tally, exc)
                return
            if isinstance(decision, CreatePyc):
                # A new object, not a venv pyc: it costs what one copy of the pyc takes.
                tally.pyc["reclaimed"] -= decision.st.st_blocks * 512
                tally.pyc["apparent"] -= len(decision.data)
            elif isinstance(decision, Adopt):
                tally.pyc["stored"] += 1
            elif isinstance(decision, Link):
                tally.pyc["linked"] += 1
                if decision.frees:
                    tally.pyc["reclaimed"] += decision.st.st_blocks * 512
                    tally.pyc["apparent"] += decision.st.st_size
            elif isinstance(decision, RewritePyc):
                tally.pyc["rewritten"] += 1

    def _pyc_unshared(
        self,
        source: SourceObject,
        before: tuple[int, int],
        pyc: Pyc,
        tally: _Tally,
        exc: Failed | TooManyLinks,
    ) -> None:
        """Sharing the pyc failed after its source was linked: keep it valid privately."""
        for decision in self.planner.keep_private(source, before, pyc):
            if isinstance(decision, Refused):
                self._refused(decision, tally.pyc_skipped)
                return
            try:
                self._execute(decision)
            except Failed as second:
                self._failed(pyc.path, second, tally.pyc_skipped, pyc=True)
                self.errors.append(Problem(pyc.path, "left stale: its source was linked"))
                return
            tally.pyc["rewritten"] += 1
            return
        tally.pyc["kept"] += 1

    def _execute(self, decision: Decision) -> None:
        match decision:
            case Adopt():
                self.planner.observe(decision.object_path, self.executor.adopt(decision))
            case Link():
                self.planner.observe(decision.object_path, self.executor.link(decision))
            case CreatePyc():
                self.planner.observe(decision.object_path, self.executor.create_pyc(decision))
            case RewritePyc():
                self.executor.rewrite_pyc(decision)

    def _refused(self, decision: Refused, skipped: Counter[str]) -> None:
        skipped[decision.reason] += 1
        if decision.error:
            self.errors.append(Problem(decision.path, decision.error))

    def _failed(self, path: str, exc: Failed, skipped: Counter[str], *, pyc: bool = False) -> None:
        reason = exc.reason.for_pyc if pyc else exc.reason
        skipped[reason] += 1
        if exc.error:
            self.errors.append(Problem(path, str(exc)))
