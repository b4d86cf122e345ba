"""Counting while the scan runs: a venv's tally, and progress by phase."""

from __future__ import annotations

import dataclasses
import os
from array import array
from collections import Counter
from dataclasses import dataclass, field

from ..census import Census, census_prefix
from ..discovery import Venv
from ..memo import Memo
from ..reasons import Reason
from ..tree import Growth
from .renewal import Renewal
from .result import Progress, PycReport, VenvReport

__all__ = ["OtherNames", "PhaseCounter", "Tally", "pyc_report"]


@dataclass(slots=True)
class Tally:
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
    # Whether pass 2 walks the venv, as pass 1 tells: a candidate already worth linking
    # when the census counted it (it stays so), or else the census prefixes of its
    # candidates, judged when every venv is counted.
    worth_walking: bool = False
    candidate_keys: array = field(default_factory=lambda: array("Q"))  # type: ignore[type-arg]
    pyc_work: bool = False  # a shared source has a pyc that is not shared yet
    pyc: Counter[str] = field(default_factory=Counter)
    pyc_skipped: Counter[str] = field(default_factory=Counter)
    pyc_private: Counter[str] = field(default_factory=Counter)  # why not shared, by reason
    unchanged: bool = False  # pass 1 took it from the memo of an earlier run
    notes: tuple[str, ...] = ()
    renewal: Renewal = field(default_factory=Renewal)  # pass 2's changes, for the memo
    folders: Growth = field(default_factory=Growth)  # what pass 2's temp names cost them

    def memo(
        self, warnings: tuple[tuple[str, str], ...], candidates: bytes, notes: tuple[str, ...]
    ) -> Memo:
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
            notes,
        )

    def merge(self, part: Tally) -> None:
        """Add what a part of pass 2 counted (from zero) for this venv."""
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(part, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, Renewal | Growth):
                mine.merge(theirs)
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
        self.notes = memo.notes
        for ckey, ino, multi_link in memo.iter_candidates():
            census.add(ckey, device, ino, multi_link)
            if self.worth_walking:
                continue
            if census.worth(ckey):
                # Its keys need not be kept: of a thousand copies of a few venvs, only
                # the first copies' are (a few bytes per file instance otherwise).
                self.worth_walking = True
                self.candidate_keys = array("Q")
            else:
                self.candidate_keys.append(census_prefix(ckey))

    def walk_again(self, worthwhile: set[int]) -> bool:
        """After pass 1 (worthwhile: the census prefixes worth linking): whether pass 2
        walks the venv. The candidates' keys are let go."""
        found = self.worth_walking or self.pyc_work
        found = found or any(k in worthwhile for k in self.candidate_keys)
        self.candidate_keys = array("Q")
        return found

    def settle(self) -> None:
        """After pass 2: the files with no copy to share, and the pycs of sources that are
        not shared (what the counts above leave unaccounted for)."""
        self.unique = self.eligible - self.shared - self.linked - self.stored
        left = (
            self.pyc["scanned"]
            - sum(self.pyc[k] for k in ("linked", "stored", "shared", "rewritten", "kept"))
            - sum(self.pyc_skipped.values())
        )
        if left:
            self.pyc_skipped[Reason.PYC_SOURCE_NOT_SHARED] += left

    def pyc_report(self) -> PycReport:
        return pyc_report(self.pyc, self.pyc_skipped, self.pyc_private)

    def report(self, venv: Venv) -> VenvReport:
        return VenvReport(
            path=self.path,
            kind=venv.kind.value,
            python=None if venv.version is None else ".".join(map(str, venv.version)),
            notes=self.notes,
            unchanged=self.unchanged,
            files_scanned=self.scanned,
            files_eligible=self.eligible,
            files_linked=self.linked,
            files_linked_without_gain=self.no_gain,
            files_already_shared=self.shared,
            files_stored=self.stored,
            bytes_reclaimed=self.reclaimed + self.pyc["reclaimed"],
            apparent_bytes_reclaimed=self.apparent + self.pyc["apparent"],
            skipped=dict(sorted(self.skipped.items())),
            pyc=self.pyc_report(),
        )


Inode = tuple[int, int]  # (st_dev, st_ino)


@dataclass(slots=True)
class OtherNames:
    """Names of the inodes pass 2 linked away without gain or made store objects that it
    has not met: outside the venvs walked (uv's cache, say), or in a later candidate.
    Every name of an inode meets the same part of pass 2 (parts go by size), so counting
    down the names a part meets leaves those it never met."""

    replaced: dict[Inode, int] = field(default_factory=dict)  # du must see them
    stored: dict[Inode, int] = field(default_factory=dict)  # new objects' other names

    def linked(self, st: os.stat_result, frees: bool) -> None:
        """One name of st's inode was replaced by a link (frees: it was the last)."""
        ident = (st.st_dev, st.st_ino)
        if frees:
            self.replaced.pop(ident, None)
            return
        left = self.replaced.get(ident, st.st_nlink) - 1  # first met: its other names
        self.replaced[ident] = left

    def adopted(self, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            self.stored[st.st_dev, st.st_ino] = st.st_nlink - 1

    def met(self, st: os.stat_result) -> None:
        """A candidate is a name of an object this run made: not one outside."""
        ident = (st.st_dev, st.st_ino)
        if ident in self.stored:
            self.stored[ident] -= 1

    def merge(self, part: OtherNames) -> None:
        self.replaced.update(part.replaced)
        self.stored.update(part.stored)


def pyc_report(counts: Counter[str], skipped: Counter[str], private: Counter[str]) -> PycReport:
    return PycReport(
        scanned=counts["scanned"],
        linked=counts["linked"],
        stored=counts["stored"],
        already_shared=counts["shared"],
        rewritten=counts["rewritten"],
        kept_private=counts["kept"],
        bytes_reclaimed=counts["reclaimed"],
        apparent_bytes_reclaimed=counts["apparent"],
        skipped=dict(sorted(skipped.items())),
        not_shared=dict(sorted(private.items())),
    )


class PhaseCounter:
    """Progress of one phase: venvs done out of total, told to the progress callback. With
    parts, every part walks every venv and ticks for it: parts ticks count one venv."""

    def __init__(self, phase: str, total: int, progress: Progress | None, parts: int = 1) -> None:
        self.phase, self.total, self.progress, self.parts = phase, total, progress, parts
        self.ticks = 0

    def tick(self, _step: object = None) -> None:
        self.ticks += 1
        if self.progress and self.ticks % self.parts == 0:
            self.progress(self.phase, self.ticks // self.parts, self.total)
