"""Pass 2's work on a venv in batches, each announced in the store's journal first."""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import Iterable, Iterator

from ..discovery import Venv
from ..inventory import Candidate, Item, Shared
from ..journal import BATCH, Entry, PendingSource
from ..tree import split

__all__ = ["Work", "batches", "entry_for", "refreshed"]

Work = Candidate | Shared


def batches(
    items: Iterable[Item], store_inodes: set[int], size: int = BATCH
) -> Iterator[list[Work]]:
    """The items pass 2 acts on, in their order, in lists of at most size: candidates,
    and shared sources with a pyc that is not a store object (pyc work)."""
    batch: list[Work] = []
    for item in items:
        if isinstance(item, Candidate) or (
            isinstance(item, Shared) and any(p.ino not in store_inodes for p in item.pycs)
        ):
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def entry_for(venv: Venv, batch: list[Work]) -> Entry:
    """The journal entry of a batch: the folders where linking and the pycs' copies put
    temp names, and each candidate source with pycs, by the stat they were valid for."""
    folders: set[str] = set()
    sources = []
    for item in batch:
        folders.update(split(p.at.rel)[0] for p in item.pycs)
        if isinstance(item, Shared):
            continue  # already the object: its pycs' validity cannot move
        folders.add(split(item.at.rel)[0])
        if item.pycs:
            sources.append(
                PendingSource(
                    source=item.at.rel,
                    algorithm=item.key.algorithm,
                    digest=item.key.digest,
                    mtime_ns=item.st.st_mtime_ns,
                    size=item.st.st_size,
                    pycs=tuple(p.at.rel for p in item.pycs),
                )
            )
    return Entry(
        root=venv.root,
        device=venv.device,
        ino=venv.ino,
        folders=tuple(sorted(folders)),
        sources=tuple(sources),
    )


def refreshed(candidate: Candidate) -> Candidate | None:
    """The candidate with its stat taken again, when the inode has other names: linking
    an earlier name of the batch moved its link count and ctime since it was listed,
    which the re-stat before the swap would take for a change. None when it is another
    file now (the next run counts it anew)."""
    if candidate.st.st_nlink == 1:
        return candidate  # its only name: nothing else in the batch reaches it
    try:
        st = candidate.at.lstat()
    except OSError:
        return None
    old = candidate.st
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (old.st_dev, old.st_ino):
        return None
    return dataclasses.replace(candidate, st=st)
