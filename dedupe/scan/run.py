"""One scan from start to end: its settings, pass 1, pass 2, and the result they add up to."""

from __future__ import annotations

import contextlib
import functools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass

from ..caches import Whereabouts, cache_folders, find_names
from ..census import Census
from ..discovery import Venv
from ..execute import DryRun, Executor
from ..inventory import Item, Shared, inventory
from ..journal import Journal
from ..link import Hardlinks, Reflinks
from ..memo import Memo, Memos
from ..plan import Planner
from ..problems import Problem, VenvSkip
from ..proof import Disk
from ..store import TRASH_DIR
from ..tree import Tree, venv_tree
from ..workers import WorkerError, run_each, run_parts
from .batches import Work, batches, entry_for, refreshed
from .examine import Walk
from .recovery import Recovery
from .result import Progress, ScanResult
from .share import InVenv, Linked, Run
from .spool import Spool, replay
from .stores import Stores
from .tally import OtherNames, PhaseCounter, Tally, pyc_report

__all__ = ["Options", "ScanRun"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    dry_run: bool
    share_pyc: bool
    full: bool  # walk every venv, even those an earlier run's memo describes
    jobs: int
    progress: Progress | None


class ScanRun:
    """The venvs of one scan with their stores, and what each pass found in them."""

    def __init__(self, options: Options, stores: Stores, venvs: list[Venv]) -> None:
        self.options = options
        self.stores = stores
        self.venvs = venvs
        self.tallies = [Tally(v.root) for v in venvs]
        self.census = Census(stores.indexes)
        self.memos = {
            device: Memos(store, stores.cow(device)) for device, store in stores.by_device.items()
        }
        # Where pass 2 announces each batch of work; none in a dry run, which writes nothing.
        self.journals = (
            {}
            if options.dry_run
            else {device: Journal(store.path) for device, store in stores.by_device.items()}
        )
        self.leftovers = 0
        self.recovery = Recovery(DryRun(), options.dry_run).report()  # none until recover()
        self.warnings: list[Problem] = []
        self.errors: list[Problem] = []
        self.new_folders: set[str] = set()
        self.linked_in: list[tuple[Venv, Tally]] = []  # the venvs pass 2 walked
        self.other_names = OtherNames()
        self.cleaner = self.new_executor()  # of leftovers: it frees nothing, needs no close()
        self.spool = Spool()  # what pass 1 found for pass 2; the caller closes the run

    def close(self) -> None:
        self.spool.close()

    def new_executor(self) -> Executor:
        # The one place a dry run differs from a real run, but for the memos a real run
        # keeps and the store it makes: which executor carries the decisions out.
        if self.options.dry_run:
            return DryRun()
        trash = {d: os.path.join(s.path, TRASH_DIR) for d, s in self.stores.by_device.items()}
        cow = self._cow_devices()
        return Reflinks(trash, cow) if cow else Hardlinks(trash)

    def _cow_devices(self) -> frozenset[int]:
        return frozenset(d for d in self.stores.by_device if self.stores.cow(d))

    def recover(self) -> None:
        """Finish what a killed run's journal entries say was under way (see
        dedupe.scan.recovery), before pass 1 looks at the venvs."""
        executor = self.new_executor()
        recovery = Recovery(executor, self.options.dry_run)
        try:
            for device, store in self.stores.by_device.items():
                recovery.store(store, self.stores.indexes[device], self.venvs)
        finally:
            self.errors += executor.close()
        for venv in recovery.changed:
            self.memos[venv.device].forget(venv)  # walk it: its pycs are not shared yet
        self.errors += recovery.errors
        self.warnings += recovery.warnings
        self.recovery = recovery.report()

    def remove_store_leftovers(self) -> None:
        if self.options.dry_run:
            return  # listing every object folder to remove nothing: the dry run's count is 0
        for store in self.stores.by_device.values():
            self.leftovers += sum(map(self.cleaner.remove_store_leftover, store.leftovers()))

    # --- pass 1 ---------------------------------------------------------------------------

    def examine(self) -> None:
        """Pass 1: RECORD, directory listings and stat only; no file is read. A venv whose
        folders and RECORDs are as an earlier run left them is taken from its memo; the
        others are walked, shared out between the workers."""
        warned: dict[int, tuple[tuple[str, str], ...]] = {}
        counter = PhaseCounter("examine", len(self.venvs), self.options.progress)
        walk = []
        for i, venv in enumerate(self.venvs):
            memo = self._remembered(venv)
            if memo is None:
                walk.append(i)
                continue
            self.tallies[i].unchanged = True
            self.tallies[i].recall(memo, self.census, venv.device)
            warned[i] = memo.warnings
            counter.tick()

        def walked(step: tuple[int, Memo, int]) -> None:
            i, memo, removed = step
            self.tallies[i].recall(memo, self.census, self.venvs[i].device)
            warned[i] = memo.warnings
            self.leftovers += removed
            counter.tick()

        # Walking churns the heap (listings, RECORD texts) and leaves it holed: walked in
        # children only, this process forks pass 2's workers from the compact heap it had.
        locks = self.stores.locks()
        run_each(self._walk, walk, self.options.jobs, walked, locks, in_children=True)
        for i in sorted(warned):
            self.warnings += [Problem(path, message) for path, message in warned[i]]

    def _remembered(self, venv: Venv) -> Memo | None:
        if self.options.full:
            return None
        memo = self.memos[venv.device].load(venv, self.options.share_pyc)
        inodes = self.stores.indexes[venv.device].inodes
        if memo is not None and any(ino in inodes for _, ino, _ in memo.iter_candidates()):
            return None  # a remembered candidate became a store object since
        return memo

    def _walk(self, i: int) -> tuple[int, Memo, int]:
        venv = self.venvs[i]
        memos = None if self.options.dry_run else self.memos[venv.device]
        inodes = self.stores.indexes[venv.device].inodes
        keep = self.spool.writer(i)
        walker = Walk(
            venv, inodes, self.options.share_pyc, memos, keep=keep, cow=self.stores.cow(venv.device)
        )
        try:
            with walker.tree:
                memo = walker.run()
                removed = sum(map(self.cleaner.remove_leftover, walker.leftovers))
        except BaseException:
            keep.discard()
            raise
        keep.close()
        return i, memo, removed

    # --- pass 2 ---------------------------------------------------------------------------

    def share(self) -> None:
        """Pass 2: only venvs that hold a file worth linking, or a shared source's pyc that
        is not shared yet, are walked again. Each worker takes the files of some sizes (so
        every copy of a content, and every name of an inode, meets one planner), in the
        same order as one process would: the same decisions."""
        todo = self._worth_walking()
        self.linked_in = [(self.venvs[i], tally) for i, tally in todo]
        jobs = self.options.jobs if todo else 0
        counter = PhaseCounter("link", len(todo), self.options.progress, max(jobs, 1))
        part = functools.partial(self._share_part, todo, jobs)
        for result in run_parts(part, jobs, counter.tick, self.stores.locks()):
            for (_i, tally), counts in zip(todo, result.tallies, strict=True):
                tally.merge(counts)
            self.errors += result.errors
            self.other_names.merge(result.other_names)
            self.new_folders |= result.new_folders
        if not self.options.dry_run and todo:
            self._renew_memos([i for i, _tally in todo], jobs)

    def _renew_memos(self, todo: list[int], jobs: int) -> None:
        """Pass 2 linked in these venvs (by index), moving their folders' stamps: renew
        their memos from what it changed in them, without a walk (dedupe.scan.renewal)."""

        def renew(i: int) -> None:
            venv, renewal = self.venvs[i], self.tallies[i].renewal
            memos = self.memos[venv.device]
            memos.renew(venv, self.options.share_pyc, renewal.delta, renewal.renewed)

        try:
            run_each(renew, todo, jobs, locks=self.stores.locks())
        except (WorkerError, OSError) as exc:
            # Everything is linked and counted: only the next run's shortcut is lost.
            root = self.venvs[todo[0]].root
            self.warnings.append(Problem(root, f"memos for the next run not kept: {exc}"))

    def _worth_walking(self) -> list[tuple[int, Tally]]:
        """The venvs (by index) with their tallies."""
        worthwhile = self.census.worthwhile_prefixes()
        # Every tally's keys are let go before the workers fork: not to be copied.
        return [(i, tally) for i, tally in enumerate(self.tallies) if tally.walk_again(worthwhile)]

    def _share_part(
        self, todo: list[tuple[int, Tally]], parts: int, part: int, emit: Callable[[None], None]
    ) -> Linked:
        stores = self.stores
        planner = Planner(
            self.census, stores.by_device, stores.indexes, Disk(), self._cow_devices()
        )
        run = Run(planner, self.new_executor(), self.options.share_pyc)
        counts = [Tally(self.venvs[i].root) for i, _tally in todo]
        share = (part, parts) if parts > 1 else None
        try:
            for (i, _tally), tally in zip(todo, counts, strict=True):
                venv = self.venvs[i]
                inodes = stores.indexes[venv.device].inodes
                with venv_tree(venv, measure_growth=not self.options.dry_run) as tree:
                    for batch in batches(self._items(i, tree, share), inodes):
                        with self._journalled(venv, batch):
                            self._share_batch(run, venv, batch, tally)
                        del batch  # before the next is gathered: one batch held at a time
                tally.folders.merge(tree.growth)  # known once its handles are closed
                emit(None)
        finally:
            run.close()
        return Linked(counts, run.other_names, run.errors, planner.new_folders)

    def _journalled(self, venv: Venv, batch: list[Work]) -> ContextManager[None]:
        """In a real run, the batch's entry in the journal of the venv's store while the
        batch is worked on (a kill leaves it for the next scan to recover from)."""
        journal = self.journals.get(venv.device)
        if journal is None:
            return contextlib.nullcontext()  # a dry run writes nothing
        return journal.pending(entry_for(venv, batch))

    def _share_batch(self, run: Run, venv: Venv, batch: list[Work], tally: Tally) -> None:
        store = self.stores.by_device[venv.device]
        inodes = self.stores.indexes[venv.device].inodes
        where = InVenv(store, inodes, venv.build, tally)
        for item in batch:
            if isinstance(item, Shared):
                run.shared_source(where, item)
                continue
            candidate = refreshed(item)
            if candidate is not None:
                run.candidate(where, candidate)

    def _items(self, i: int, tree: Tree, share: tuple[int, int] | None) -> Iterator[Item]:
        """Pass 2's items of venv i: from the spool pass 1 kept of it, else (a venv taken
        from its memo in pass 1) from its RECORDs and folders."""
        venv = self.venvs[i]
        inodes = self.stores.indexes[venv.device].inodes
        rows = self.spool.read(i)
        cow = self.stores.cow(venv.device)
        if rows is None:
            return inventory(venv, inodes, venv.device, share=share, tree=tree, cow=cow)
        return replay(tree, rows, inodes, venv.device, share, cow=cow)

    # --- the result -----------------------------------------------------------------------

    def _elsewhere(self, names: dict[tuple[int, int], int]) -> Whereabouts:
        """Where the names that pass 2 never met are, looked for only when there are some:
        the caches of uv, conda, pdm and poetry are walked (by d_ino), nothing else."""
        left = {ident: n for ident, n in names.items() if n > 0}
        return find_names(left, cache_folders() if left else [])

    def result(
        self, roots: list[str], skipped_venvs: list[VenvSkip], notes: tuple[str, ...] = ()
    ) -> ScanResult:
        """What the run did, with the stores' figures (still open: locked in a real run)."""
        for tally in self.tallies:
            tally.settle()
        tallies = self.tallies
        skipped: Counter[str] = Counter()
        pyc: Counter[str] = Counter()
        pyc_skipped: Counter[str] = Counter()
        pyc_private: Counter[str] = Counter()
        for tally in tallies:
            skipped.update(tally.skipped)
            pyc.update(tally.pyc)
            pyc_skipped.update(tally.pyc_skipped)
            pyc_private.update(tally.pyc_private)
        return ScanResult(
            dry_run=self.options.dry_run,
            roots=tuple(roots),
            venvs=tuple(t.report(v) for t, v in zip(tallies, self.venvs, strict=True)),
            venvs_unchanged=sum(t.unchanged for t in tallies),
            skipped_venvs=tuple(skipped_venvs),
            stores=self.stores.reports(linked=not self.options.dry_run and bool(self.linked_in)),
            files_scanned=sum(t.scanned for t in tallies),
            files_eligible=sum(t.eligible for t in tallies),
            files_linked=sum(t.linked for t in tallies),
            files_already_shared=sum(t.shared for t in tallies),
            files_stored=sum(t.stored for t in tallies),
            files_unique=sum(t.unique for t in tallies),
            files_linked_without_gain=sum(t.no_gain for t in tallies),
            replaced_names_elsewhere=self._elsewhere(self.other_names.replaced),
            object_names_elsewhere=self._elsewhere(self.other_names.stored),
            leftovers_removed=self.leftovers,
            recovery=self.recovery,
            bytes_reclaimed=sum(t.reclaimed for t in tallies) + pyc["reclaimed"],
            apparent_bytes_reclaimed=sum(t.apparent for t in tallies) + pyc["apparent"],
            pyc=pyc_report(pyc, pyc_skipped, pyc_private),
            store_overhead_bytes=self.stores.overhead(self.new_folders),
            folder_growth_bytes=sum(t.folders.bytes for t in tallies),
            skipped=dict(sorted(skipped.items())),
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
            notes=notes,
        )
