"""Pass 1: walk a venv (RECORD, listings, stat; no file read) and keep its memo."""

from __future__ import annotations

from collections.abc import Callable

from ..census import census_key
from ..discovery import Venv
from ..inventory import BadInput, Candidate, Leftover, Notice, Shared, Skipped, inventory
from ..memo import CANDIDATE, Memo, Memos, Trace
from ..tree import At, venv_tree
from .renewal import pyc_work
from .spool import Row, row
from .tally import Tally

__all__ = ["Walk"]


class Walk:
    """Pass 1 over one walked venv: its counts, candidates and the temp files a killed
    run left in it. With memos (a real run), stamp what it looks at and keep a memo."""

    def __init__(
        self,
        venv: Venv,
        inodes: set[int],
        share_pyc: bool,
        memos: Memos | None,
        keep: Callable[[Row], None] | None = None,
        cow: bool = False,
    ) -> None:
        self.cow = cow  # the store shares by copy-on-write (see dedupe.inventory)
        self.venv, self.inodes, self.share_pyc = venv, inodes, share_pyc
        self.memos = memos
        self.tree = venv_tree(venv)  # the caller closes it, once done with the leftovers
        self.leftovers: list[At] = []
        self.keep = keep  # given: told the spool row of each item pass 2 will need

    def run(self) -> Memo:
        venv, inodes = self.venv, self.inodes
        tally = Tally(venv.root)
        trace = clock = None
        if self.memos is not None:
            try:
                clock = self.memos.store.clock_ns()  # before the first stamp
                trace = Trace(venv.root, self.tree.lstat)
            except OSError:
                pass  # no memo: the next run walks this venv again
        warnings: list[tuple[str, str]] = []
        notes: list[str] = []
        candidates = bytearray()
        pycs = pycs_shared = 0
        for item in inventory(venv, inodes, venv.device, trace, tree=self.tree, cow=self.cow):
            match item:
                case Candidate(st=st, key=key):
                    candidates += CANDIDATE.pack(
                        census_key(st.st_dev, key), st.st_ino, st.st_nlink > 1
                    )
                    tally.eligible += 1
                    if self.keep is not None:
                        self.keep(row(item))
                case Shared():
                    tally.eligible += 1
                    tally.shared += 1
                    work = pyc_work(item.pycs, inodes, venv.build, self.share_pyc)
                    tally.pyc_work |= work
                    if work and self.keep is not None:
                        self.keep(row(item))
                case Skipped(reason=reason):
                    tally.skipped[reason] += 1
                case BadInput(path=path, message=message):
                    warnings.append((path, message))
                    continue
                case Leftover(at=at):
                    self.leftovers.append(at)
                    continue
                case Notice(message=message):
                    notes.append(message)
                    continue
            # A source file: one of Candidate, Shared, Skipped.
            tally.scanned += 1
            if item.pycs:
                pycs += len(item.pycs)
                pycs_shared += sum(1 for p in item.pycs if p.ino in inodes)
        tally.pyc["scanned"] += pycs
        tally.pyc["shared"] += pycs_shared
        memo = tally.memo(tuple(warnings), bytes(candidates), tuple(notes))
        if self.memos is not None and trace is not None and clock is not None:
            if self.leftovers:
                self.memos.forget(venv)  # removing them changes the venv: walk it next time
            else:
                self.memos.save(venv, self.share_pyc, trace, clock, memo)
        return memo
