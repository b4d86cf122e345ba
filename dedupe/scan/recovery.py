"""Recovery from a killed run: the work the stores' journals say was under way, finished
at the start of the next scan, under the store's lock (DESIGN.md invariant 6).

For each journal entry (dedupe.journal) of a venv this scan walks, the temp names in
the folders the entry names are removed, and each pyc the entry names that was valid
for its source's stat before the killed run, and is stale now because the source became
a link to its store object, is rewritten: a private copy with the same code, its header
naming the source's new mtime, as the killed run itself would have written when it could
not share it (the same scan's pass 2 then shares it by the ordinary rules). Nothing is
healed on a stale pyc's own word: a pyc that was stale before, or whose source is not
the object the killed run proved it equal to, stays as it is. Folders are opened through
the venv's handles (dedupe.tree), never following a symlink out of the venv.

An entry of a venv that is gone (or made anew at its path) is dropped; one of a venv
outside this scan's roots is kept for a scan that walks it. A dry run changes nothing:
it counts what a real run would do, leaving out entries whose writer still runs.
"""

from __future__ import annotations

import os
import stat

from .. import bytecode
from ..decisions import RewritePyc
from ..discovery import Venv
from ..execute import Executor, Failed
from ..hashing import FileChanged
from ..journal import Entry, Journal, JournalError, PendingSource, parse_entry, writer_pid
from ..problems import Problem
from ..processes import running
from ..proof import Disk
from ..store import TMP_PREFIX, Store, StoreIndex
from ..tree import At, Tree, venv_tree
from .result import RecoveryReport

__all__ = ["Recovery"]


class Recovery:
    """What the journals of a scan's stores say, and what recovering from it did."""

    def __init__(self, executor: Executor, dry_run: bool) -> None:
        self.executor = executor
        self.dry_run = dry_run
        self.entries = self.healed = self.removed = self.dropped = self.kept = 0
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.changed: list[Venv] = []  # venvs it changed: their memos are stale

    def report(self) -> RecoveryReport:
        return RecoveryReport(
            entries=self.entries,
            pycs_healed=self.healed,
            temp_files_removed=self.removed,
            entries_dropped=self.dropped,
            entries_kept=self.kept,
        )

    def store(self, store: Store, index: StoreIndex, venvs: list[Venv]) -> None:
        """Recover from every entry in the store's journal."""
        journal = Journal(store.path)
        by_root = {v.root: v for v in venvs if v.device == store.device}
        for name in journal.names():
            if self.dry_run and _running(writer_pid(name)):
                continue  # a run under way, not a killed one
            path = os.path.join(journal.folder, name)
            try:
                entry = parse_entry(journal.read(name))
            except FileNotFoundError:
                continue
            except (OSError, JournalError) as exc:
                self.warnings.append(Problem(path, f"journal entry not usable, dropped: {exc}"))
                self._drop(journal, name)
                continue
            self.entries += 1
            venv = by_root.get(entry.root)
            if _gone(entry, venv, store.device):
                self.dropped += 1
                self._drop(journal, name)
            elif venv is None:
                self.kept += 1  # outside this scan's roots: a scan that walks it recovers
            elif self._recover(venv, entry, index):
                self._drop(journal, name)

    def _drop(self, journal: Journal, name: str) -> None:
        if not self.dry_run:
            journal.remove(name)

    def _recover(self, venv: Venv, entry: Entry, index: StoreIndex) -> bool:
        """Finish the entry's work in venv; whether it is done (no error to retry)."""
        errors, healed, removed = len(self.errors), self.healed, self.removed
        with venv_tree(venv) as tree:
            for folder in entry.folders:
                self._sweep(tree, folder)
            for source in entry.sources:
                self._heal_source(tree, source, index, venv.device)
        if (self.healed, self.removed) != (healed, removed) and not self.dry_run:
            self.changed.append(venv)
        return len(self.errors) == errors

    def _sweep(self, tree: Tree, folder: str) -> None:
        """Remove the temp names in a venv folder (regular files only, as a killed run
        leaves them); a folder that is gone, or is a symlink now, holds none of ours."""
        try:
            entries = tree.scandir(folder)
        except OSError:
            return
        prefix = f"{folder}/" if folder else ""
        for e in entries:
            if not (e.name.startswith(TMP_PREFIX) and e.is_file(follow_symlinks=False)):
                continue
            if self.dry_run or self.executor.remove_leftover(At(tree, prefix + e.name)):
                self.removed += 1

    def _heal_source(self, tree: Tree, pending: PendingSource, index: StoreIndex, dev: int) -> None:
        """Heal the source's pycs if the killed run linked it to the object it proved it
        equal to (its mtime is the object's now); otherwise its pycs are as they were."""
        try:
            st = At(tree, pending.source).lstat()
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode) or st.st_dev != dev or st.st_size != pending.size:
            return
        found = index.sources_by_inode.get(st.st_ino)
        if found is None or (found[0].algorithm, found[0].digest) != (
            pending.algorithm,
            pending.digest,
        ):
            return
        if bytecode.pyc_mtime(st.st_mtime_ns) == bytecode.pyc_mtime(pending.mtime_ns):
            return  # the same second: no pyc of it went stale
        for rel in pending.pycs:
            self._heal_pyc(At(tree, rel), pending, st)

    def _heal_pyc(self, at: At, pending: PendingSource, source: os.stat_result) -> None:
        disk = Disk()
        try:
            head, pst = disk.header(at)
            header = bytecode.parse_header(head)
            if (
                header.hash_based
                or bytecode.valid_for_stat(header, source.st_mtime_ns, source.st_size)
                or not bytecode.valid_for_stat(header, pending.mtime_ns, pending.size)
            ):
                return  # valid now, or not valid before: nothing to heal
            data = disk.whole(at, pst)
        except (OSError, ValueError, FileChanged):
            return  # gone, replaced or unreadable: not the pyc the journal meant
        fixed = bytecode.with_source_stat(data, source.st_mtime_ns, source.st_size)
        try:
            self.executor.rewrite_pyc(RewritePyc(at, pst, fixed))
        except Failed as exc:
            if exc.error:
                self.errors.append(Problem(at.path, f"stale since a killed run: {exc}"))
            return
        self.healed += 1


def _gone(entry: Entry, venv: Venv | None, device: int) -> bool:
    """Whether the entry's venv is gone, or another venv is at its path now (venv: the
    one this scan found there, if any). A venv that cannot be looked at is not gone, nor
    is a root folder with the same inode: it may be a package tree, which has no
    pyvenv.cfg, and a scan of it finishes the entry's work."""
    if entry.device != device:
        return True
    if venv is not None:
        return 0 not in (venv.ino, entry.ino) and venv.ino != entry.ino
    try:
        st = os.lstat(entry.root)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != (entry.device, entry.ino)


def _running(pid: int | None) -> bool:
    return pid is not None and pid != os.getpid() and running(pid)
