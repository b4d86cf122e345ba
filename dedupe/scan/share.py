"""Pass 2: ask the planner about each candidate, hand decisions to the executor, count."""

from __future__ import annotations

import os
from collections import Counter
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
from .tally import OtherNames, Tally

__all__ = ["Linked", "Run"]


@dataclass(frozen=True, slots=True)
class Linked:
    """What one part of pass 2 did: counts per venv (from zero), errors, and the rest."""

    tallies: list[Tally]
    other_names: OtherNames
    errors: list[Problem]
    settled: set[int]
    new_folders: set[str]


# Why pass 2 leaves a pyc alone for as long as the pyc is there: no pyc work for memos.
PYC_SETTLED = frozenset(
    {Reason.PYC_STALE, Reason.PYC_HASH_BASED, Reason.PYC_UNRECOGNISED, Reason.XATTRS_DIFFER}
)


class Run:
    """Pass 2: asks the planner, hands decisions to the executor, counts."""

    def __init__(self, planner: Planner, executor: Executor, share_pyc: bool) -> None:
        self.planner = planner
        self.executor = executor
        self.share_pyc = share_pyc
        self.errors: list[Problem] = []
        # Left alone for a reason the next run keeps (pycs), or sharing the store's blocks
        # (copy-on-write sources): the next run's memo counts them as shared.
        self.settled: set[int] = set()
        self.other_names = OtherNames()

    def close(self) -> None:
        """Wait for the executor's work under way (du must see replaced copies gone)."""
        self.errors += self.executor.close()

    def candidate(
        self, store: Store, candidate: Candidate, tally: Tally, build: Build | None
    ) -> None:
        ckey = census_key(candidate.st.st_dev, candidate.key)
        for _attempt in range(2):
            decision = self.planner.decide(candidate, ckey)
            if isinstance(decision, Unique):
                return
            if isinstance(decision, AlreadyShared):
                tally.shared += 1
                self.other_names.met(candidate.st)
                if self.planner.cow(candidate.st.st_dev):
                    self.settled.add(candidate.st.st_ino)
                    self._pycs(store, candidate, tally, build)  # Python may have written some
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
            if self.planner.cow(candidate.st.st_dev):
                self.settled.add(candidate.st.st_ino)  # it keeps its inode
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
            self._pycs(store, candidate, tally, build)
            return
        tally.eligible -= 1
        tally.skipped[Reason.LINK_FAILED] += 1
        self.errors.append(Problem(candidate.path, "store object keeps hitting the link limit"))

    def _pycs(self, store: Store, candidate: Candidate, tally: Tally, build: Build | None) -> None:
        """The pycs of a source just linked or adopted (or, by copy-on-write, shared)."""
        source = self.planner.source_object(candidate)
        if source is not None:
            for pyc in candidate.pycs:
                self._pyc(store, source, (candidate.at, candidate.st), pyc, tally, build)

    def shared_source(
        self, store: Store, item: Shared, tally: Tally, inodes: set[int], build: Build | None
    ) -> None:
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
                self._pyc(store, source, (item.at, st), pyc, tally, build)

    def _pyc(
        self,
        store: Store,
        source: SourceObject,
        source_file: tuple[At, os.stat_result],
        pyc: Pyc,
        tally: Tally,
        build: Build | None,
    ) -> None:
        """One pyc of a source that now is (or shares the data of) the object source;
        source_file: the venv's source and its stat before this run linked it."""
        before = (source_file[1].st_mtime_ns, source_file[1].st_size)
        private = None if not self.share_pyc else _private(build, pyc)
        share = build if self.share_pyc and private is None else None
        decisions = self.planner.decide_pyc(store, source, source_file, pyc, share)
        if not decisions:
            tally.pyc["kept"] += 1
        if private is not None and not any(isinstance(d, Refused) for d in decisions):
            tally.pyc_private[private] += 1
        for decision in decisions:
            if isinstance(decision, Refused):
                self._refused(decision, tally.pyc_skipped)
                if decision.reason in PYC_SETTLED:
                    self.settled.add(pyc.ino)
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
            case ClonePyc():
                self.executor.clone_pyc(decision)

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
