"""The hardlink executor: Hardlinks, dedupe.execute's Executor of a real run."""

from __future__ import annotations

import dataclasses
import os

from ..decisions import Adopt, ClonePyc, CreatePyc, Link, Observed, RewritePyc
from ..execute import Failed
from ..hashing import fingerprint
from ..problems import Problem
from ..reasons import Reason
from ..tree import At
from .copies import create_pyc, rewrite_pyc
from .objects import remove_store_leftover
from .steps import remove_leftover
from .swap import adopt, replace
from .unlinker import Unlinker

__all__ = ["Hardlinks"]


class Hardlinks:
    """Shares files by hardlinks into the store: dedupe.execute's Executor of a real run.
    Displaced files are freed by an Unlinker per filesystem, through its store's trash."""

    def __init__(self, trash_folders: dict[int, str]) -> None:
        self._unlinkers = {device: Unlinker(path) for device, path in trash_folders.items()}

    def adopt(self, action: Adopt) -> Observed:
        adopt(action)
        return _observe(action.object_path)

    def link(self, action: Link) -> Observed:
        if action.object_ino == -1:  # a pyc object written just before: its inode now
            action = dataclasses.replace(action, object_ino=os.lstat(action.object_path).st_ino)
        replace(action, self._unlinkers[action.st.st_dev])
        return _observe(action.object_path)

    def create_pyc(self, action: CreatePyc) -> Observed:
        return _observe(action.object_path, create_pyc(action))

    def rewrite_pyc(self, action: RewritePyc) -> int:
        return rewrite_pyc(action, self._unlinkers[action.st.st_dev])

    def clone_pyc(self, action: ClonePyc) -> int:
        raise Failed(
            Reason.LINK_FAILED, f"{action.path!r}: hardlinks cannot clone a pyc", error=True
        )

    def discard(self, device: int) -> Unlinker:
        """How a file displaced on the device is freed: through its store's trash."""
        return self._unlinkers[device]

    def remove_leftover(self, at: At) -> bool:
        return remove_leftover(at)

    def remove_store_leftover(self, path: str) -> bool:
        return remove_store_leftover(path)

    def close(self) -> list[Problem]:
        """Wait until the replaced copies are gone (du must see them gone)."""
        problems = []
        for unlinker in self._unlinkers.values():
            unlinker.close()
            problems += [Problem(path, error) for path, error in unlinker.failures]
        return problems


def _observe(object_path: str, new_ino: int | None = None) -> Observed:
    # Right after our own change, before anyone else could touch the object: its new
    # known-good state for the planner.
    try:
        return Observed(fingerprint(os.lstat(object_path)), new_ino)
    except OSError:
        return Observed(None, new_ino)
