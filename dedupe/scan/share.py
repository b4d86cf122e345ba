"""Pass 2: ask the planner about each candidate, hand decisions to the executor, count."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..census import census_key
from ..decisions import (
    Adopt,
    AlreadyShared,
    ClonePyc,
    CreatePyc,
    Decision,
    Link,
    Refused,
    RewritePyc,
    SourceObject,
    Unique,
)
from ..execute import Executor, Failed, TooManyLinks
from ..interpreter import Build
from ..inventory import Candidate, Shared
from ..listing import Pyc
from ..plan import Planner
from ..problems import Problem
from ..reasons import Reason
from ..store import (
    Store,
)
from ..tree import At
from .renewal import pyc_work
from .tally import OtherNames, Tally

__all__ = ["InVenv", "Linked", "Run"]


@dataclass(frozen=True, slots=True)
class Linked:
    """What one part of pass 2 did: counts per venv (from zero), errors, and the rest."""

    tallies: list[Tally]
    other_names: OtherNames
    errors: list[Problem]
    new_folders: set[str]


# Why pass 2 leaves a pyc alone for as long as the pyc is there: no pyc work for memos.
PYC_SETTLED = frozenset(
    {Reason.PYC_STALE, Reason.PYC_HASH_BASED, Reason.PYC_UNRECOGNISED, Reason.XATTRS_DIFFER}
)


@dataclass(frozen=True, slots=True)
class InVenv:
    """The venv that pass 2 works in: its store, the store's objects when the run began,
    its interpreter's build, and the counts of it."""

    store: Store
    inodes: set[int]
    build: Build | None
    tally: Tally


class Run:
    """Pass 2: asks the planner, hands decisions to the executor, counts."""

    def __init__(self, planner: Planner, executor: Executor, share_pyc: bool) -> None:
        self.planner = planner
        self.executor = executor
        self.share_pyc = share_pyc
        self.errors: list[Problem] = []
        self.other_names = OtherNames()

    def close(self) -> None:
        """Wait for the executor's work under way (du must see replaced copies gone)."""
        self.errors += self.executor.close()

    def candidate(self, v: InVenv, candidate: Candidate) -> None:
        """Ask the planner about a candidate, carry the decision out, count."""
        ckey = census_key(candidate.st.st_dev, candidate.key)
        renewal = v.tally.renewal
        renewal.examined += 1
        if self._shared(v, candidate, ckey):
            renewal.converted += 1
        else:
            renewal.keep(ckey, candidate.st.st_ino, candidate.st.st_nlink > 1)

    def _shared(self, v: InVenv, candidate: Candidate, ckey: bytes) -> bool:
        """Carry out the planner's decision; whether the candidate now is a name of its
        object (or, by copy-on-write, shares its blocks)."""
        cow, tally = self.planner.cow(candidate.st.st_dev), v.tally
        for _attempt in range(2):
            decision = self.planner.decide(candidate, ckey)
            if isinstance(decision, Unique):
                return False
            if isinstance(decision, AlreadyShared):
                tally.shared += 1
                self.other_names.met(candidate.st)
                if cow:
                    self._pycs(v, candidate)  # Python may have written some
                else:
                    tally.renewal.pyc_work += self._work_left(v, candidate.pycs)
                return True
            if isinstance(decision, Refused):
                self._refused(decision, tally.skipped)
                tally.eligible -= 1
                return False
            try:
                self._execute(decision, tally)
            except TooManyLinks:
                self.planner.undo(decision, candidate)
                self.planner.object_full(candidate)
                continue  # decide again: the planner starts a new object for this content
            except Failed as exc:
                self.planner.undo(decision, candidate)
                self._failed(candidate.path, exc, tally.skipped)
                tally.eligible -= 1
                return False
            if isinstance(decision, Adopt):
                tally.stored += 1
                self.other_names.adopted(decision.st)
            elif isinstance(decision, Link):
                tally.linked += 1
                self.other_names.linked(decision.st, decision.frees)
                if decision.frees:
                    tally.reclaimed += decision.st.st_blocks * 512
                    tally.apparent += decision.st.st_size
                else:
                    tally.no_gain += 1
            self._pycs(v, candidate)
            return True
        tally.eligible -= 1
        tally.skipped[Reason.LINK_FAILED] += 1
        self.errors.append(Problem(candidate.path, "store object keeps hitting the link limit"))
        return False

    def _pycs(self, v: InVenv, candidate: Candidate) -> None:
        """The pycs of a source just linked or adopted (or, by copy-on-write, shared)."""
        source = self.planner.source_object(candidate)
        source_file = (candidate.at, candidate.st)
        left = candidate.pycs
        if source is not None:
            left = tuple(p for p in left if not self._pyc(v, source, source_file, p))
        if not self.planner.cow(candidate.st.st_dev):  # a walk finds it shared: pyc work?
            v.tally.renewal.pyc_work += self._work_left(v, left)

    def shared_source(self, v: InVenv, item: Shared) -> None:
        """A source already linked in an earlier run whose pycs are not all shared: pycs
        Python wrote since (uv installs without --compile-bytecode) or new interpreters."""
        left = tuple(pyc for pyc in item.pycs if pyc.ino not in v.inodes)
        source = self._indexed_source(v, item)
        if source is not None:
            left = tuple(p for p in left if not self._pyc(v, source[0], source[1], p))
        v.tally.renewal.pyc_work += self._work_left(v, left)

    def _work_left(self, v: InVenv, pycs: Iterable[Pyc]) -> int:
        """1 when a walk would find pyc work in these pycs of a shared source, else 0."""
        return int(pyc_work(pycs, v.inodes, v.build, self.share_pyc))

    def _indexed_source(
        self, v: InVenv, item: Shared
    ) -> tuple[SourceObject, tuple[At, os.stat_result]] | None:
        """The object a shared source is a name of, with the source and its stat."""
        found = self.planner.indexed_source(v.store, item.ino)
        if found is None:
            return None
        try:
            st = item.at.lstat()
        except OSError:
            return None
        if st.st_ino != item.ino:
            return None
        key, generation = found
        return SourceObject(key, generation, st.st_mtime_ns, st.st_size), (item.at, st)

    def _pyc(
        self,
        v: InVenv,
        source: SourceObject,
        source_file: tuple[At, os.stat_result],
        pyc: Pyc,
    ) -> bool:
        """One pyc of a source that now is (or shares the data of) the object source;
        source_file: the venv's source and its stat before this run linked it. Whether
        the pyc is now a name of a store object, or left alone for good (PYC_SETTLED):
        either way no pyc work for the next run."""
        tally, build = v.tally, v.build
        cow = self.planner.cow(source_file[1].st_dev)
        before = (source_file[1].st_mtime_ns, source_file[1].st_size)
        private = None if not self.share_pyc else _private(build, pyc)
        share = build if self.share_pyc and private is None else None
        decisions = self.planner.decide_pyc(v.store, source, source_file, pyc, share)
        if not decisions:
            tally.pyc["kept"] += 1
        if private is not None and not any(isinstance(d, Refused) for d in decisions):
            tally.pyc_private[private] += 1
        for decision in decisions:
            if isinstance(decision, Refused):
                self._refused(decision, tally.pyc_skipped)
                return decision.reason in PYC_SETTLED
            if isinstance(decision, AlreadyShared):
                tally.pyc["shared"] += 1
                # Pass 1 counted store objects; by copy-on-write, the memo counts every
                # pyc that shares its object's blocks (as a walk's pass 2 would).
                tally.renewal.pycs_shared += cow or pyc.ino not in v.inodes
                return True
            try:
                self._execute(decision, tally)
            except (Failed, TooManyLinks) as exc:
                if isinstance(decision, (CreatePyc, Adopt)):
                    self.planner.undo_pyc(decision.object_path)
                self._pyc_unshared(source, before, pyc, tally, exc)
                return False
            self._count_pyc(decision, tally)
        return bool(decisions) and isinstance(decisions[-1], (Adopt, Link, ClonePyc))

    def _count_pyc(self, decision: Decision, tally: Tally) -> None:
        if isinstance(decision, CreatePyc):
            # A new object, not a venv pyc: it costs what one copy of the pyc takes.
            tally.pyc["reclaimed"] -= decision.st.st_blocks * 512
            tally.pyc["apparent"] -= len(decision.data)
        elif isinstance(decision, Adopt):
            tally.pyc["stored"] += 1
            tally.renewal.pycs_shared += 1  # its inode is the object, or by cow its blocks
        elif isinstance(decision, Link):
            tally.pyc["linked"] += 1
            tally.renewal.pycs_shared += 1
            self.other_names.linked(decision.st, decision.frees)
            if decision.frees:
                tally.pyc["reclaimed"] += decision.st.st_blocks * 512
                tally.pyc["apparent"] += decision.st.st_size
        elif isinstance(decision, RewritePyc):
            tally.pyc["rewritten"] += 1
        elif isinstance(decision, ClonePyc):
            # Its blocks go; a clone with its own header costs the block that holds it.
            own = decision.st.st_blksize if decision.header else 0
            tally.pyc["linked"] += 1
            tally.renewal.pycs_shared += 1
            tally.pyc["reclaimed"] += decision.st.st_blocks * 512 - own
            tally.pyc["apparent"] += decision.st.st_size - own

    def _pyc_unshared(
        self,
        source: SourceObject,
        before: tuple[int, int],
        pyc: Pyc,
        tally: Tally,
        exc: Failed | TooManyLinks,
    ) -> None:
        """Sharing the pyc failed after its source was linked: keep it valid privately."""
        for decision in self.planner.keep_private(source, before, pyc):
            if isinstance(decision, Refused):
                self._refused(decision, tally.pyc_skipped)
                return
            try:
                self._execute(decision, tally)
            except Failed as second:
                self._failed(pyc.path, second, tally.pyc_skipped, pyc=True)
                self.errors.append(Problem(pyc.path, "left stale: its source was linked"))
                return
            tally.pyc["rewritten"] += 1
            return
        tally.pyc["kept"] += 1

    def _execute(self, decision: Decision, tally: Tally) -> None:
        """Hand the decision to the executor; tell the planner what became of the
        object, and the renewal what became of a venv file's inode."""
        match decision:
            case Adopt():
                self.planner.observe(decision.object_path, self.executor.adopt(decision))
            case Link():
                observed = self.executor.link(decision)
                self.planner.observe(decision.object_path, observed)
                if not self.planner.cow(decision.st.st_dev):  # copy-on-write keeps the inode
                    new = None if observed is None else observed.ino()
                    tally.renewal.replaced(decision.at.rel, decision.st.st_ino, new)
            case CreatePyc():
                self.planner.observe(decision.object_path, self.executor.create_pyc(decision))
            case RewritePyc():
                new = self.executor.rewrite_pyc(decision)
                tally.renewal.replaced(decision.at.rel, decision.st.st_ino, new)
            case ClonePyc():
                new = self.executor.clone_pyc(decision)
                tally.renewal.replaced(decision.at.rel, decision.st.st_ino, new)

    def _refused(self, decision: Refused, skipped: Counter[str]) -> None:
        skipped[decision.reason] += 1
        if decision.error:
            self.errors.append(Problem(decision.path, decision.error))

    def _failed(self, path: str, exc: Failed, skipped: Counter[str], *, pyc: bool = False) -> None:
        reason = exc.reason.for_pyc if pyc else exc.reason
        skipped[reason] += 1
        if exc.error:
            self.errors.append(Problem(path, str(exc)))


def _private(build: Build | None, pyc: Pyc) -> Reason | None:
    """Why the pyc may not share an inode with other venvs' pycs, if it may not: only the
    build that wrote it may share it (patch releases compile differently)."""
    if build is None:
        return Reason.PYC_BUILD_UNKNOWN
    if not build.writes(pyc.cache_tag):
        return Reason.PYC_OTHER_INTERPRETER
    return None
