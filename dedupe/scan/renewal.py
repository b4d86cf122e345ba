"""What pass 2 changed in a venv, so that its memo is renewed without a walk.

A memo (dedupe.memo) is pass 1's result with a stamp of each folder and RECORD. Pass 2's
links move the stamps of the folders they link in, and turn candidates into names of
store objects. Pass 2 knows each of its changes, so the new memo is the old one with those
changes made: its counts moved by what pass 2 counted (Renewal), and each folder whose
stamp moved listed once more, to check by its listing sum that it holds what pass 1 found
there but for pass 2's own replacements (Memos.renew). A venv is walked again by the next
run instead where pass 2 could not tell a change exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..interpreter import Build
from ..listing import Pyc, entry_sum
from ..memo import CANDIDATE, Memo

__all__ = ["Renewal", "pyc_work"]


def pyc_work(pycs: Iterable[Pyc], inodes: set[int], build: Build | None, share_pyc: bool) -> bool:
    """Whether these pycs of a shared source hold work for pass 2: one that is no store
    object (inodes) and that the venv's interpreter (build) writes. Without pyc sharing
    there is nothing to do: the scan that linked the source kept its pycs valid, and
    Python writes valid ones. Nor for pycs of a build that cannot be told, or of another
    interpreter than the venv's: they stay private. What a walk counts (examine.Walk),
    and what a renewal counts in its stead."""
    if not share_pyc or build is None:
        return False
    return any(p.ino not in inodes and build.writes(p.cache_tag) for p in pycs)


@dataclass(slots=True)
class Renewal:
    """What one part of pass 2 did to one venv's files (from zero; parts add up)."""

    examined: int = 0  # candidates the planner was asked about
    converted: int = 0  # of those, now names of store objects (or sharing their blocks)
    kept: bytearray = field(default_factory=bytearray)  # CANDIDATE records of the others
    pycs_shared: int = 0  # pycs that became names of store objects
    pyc_work: int = 0  # shared sources with a pyc still to share (see examine.Walk)
    delta: int = 0  # what the replacements add to the venv's listing sums
    unknown: int = 0  # replacements whose new inode is not known: no memo then

    def replaced(self, rel: str, old: int, new: int | None) -> None:
        """The venv file rel (venv-relative) is now the inode new, no longer old."""
        if new is None:
            self.unknown += 1
            return
        self.delta += entry_sum(rel, "f", new) - entry_sum(rel, "f", old)

    def keep(self, ckey: bytes, ino: int, multi_link: bool) -> None:
        """A candidate that stays one."""
        self.kept += CANDIDATE.pack(ckey, ino, multi_link)

    def merge(self, part: Renewal) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(part, f.name))

    def renewed(self, memo: Memo) -> Memo:
        """The memo of the venv as pass 2 left it: what a walk would find now. ValueError
        when that cannot be told: a change whose new inode is not known, or candidates
        of the memo that pass 2 did not meet (they changed in between)."""
        if self.unknown or self.examined * CANDIDATE.size != len(memo.candidates):
            raise ValueError("pass 2 cannot tell what a walk would find")
        return dataclasses.replace(
            memo,
            shared=memo.shared + self.converted,
            pyc_shared=memo.pyc_shared + self.pycs_shared,
            pyc_work=self.pyc_work > 0,
            candidates=bytes(self.kept),
        )
