"""`gc`: remove the store objects no venv uses any more, then the folders left empty."""

from __future__ import annotations

import os

from .. import link, memo
from ..errors import DEFAULT_LOCK_TIMEOUT, StoreError
from ..problems import Problem
from ..store import Store, open_store, user_store_path
from .placement import DAMAGED_FOLDER, LockWait, open_existing, store_files
from .results import GcResult

__all__ = ["gc"]


_OBJECT_TREES = ("objects", "pyc")


def _emptied_folders(top: str, removed: set[str]) -> list[str]:
    """Folders strictly below top that hold nothing once the files in removed are gone,
    deepest first."""
    emptied: list[str] = []

    def visit(folder: str) -> bool:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return False
        empty = True
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if visit(entry.path):
                    emptied.append(entry.path)
                else:
                    empty = False
            elif entry.path not in removed:
                empty = False
        return empty

    visit(top)
    return emptied


def gc(
    store: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_lock_wait: LockWait | None = None,
) -> GcResult:
    """Remove, under the store's lock, the objects no venv uses any more (link count 1,
    checked again right before each unlink), then the folders that left empty.

    Without store, the user's store (dedupe.store.user_store_path()).
    """
    notes: list[str] = []
    store_ = _store_to_collect(store, notes)
    errors: list[Problem] = []
    if not dry_run:
        store_.lock(timeout=lock_timeout, on_wait=on_lock_wait)
    try:
        files = store_files(store_)
        unused = files.unused
        removed = [st for _, st in unused] if dry_run else _remove_unused(unused, errors)
        tops = [os.path.join(store_.path, t) for t in (*_OBJECT_TREES, DAMAGED_FOLDER)]
        gone_paths = {p for p, _ in unused} if dry_run else set()
        folders = [f for top in tops for f in _emptied_folders(top, gone_paths)]
        if not dry_run:
            folders = [f for f in folders if link.remove_empty_folder(f)]
            memo.prune(store_)
    finally:
        store_.unlock()
    return GcResult(
        dry_run=dry_run,
        store=store_.path,
        objects=len(files.objects),
        damaged_objects=len(files.damaged),
        files_removed=len(removed),
        bytes_freed=sum(st.st_blocks * 512 for st in removed),
        apparent_bytes_freed=sum(st.st_size for st in removed),
        folders_removed=len(folders),
        errors=tuple(errors),
        notes=tuple(notes),
    )


def _store_to_collect(store: str | os.PathLike[str] | None, notes: list[str]) -> Store:
    """The store given, or else the user's store (saying so in notes); it must exist."""
    if store is not None:
        return open_existing(os.path.abspath(os.fspath(store)))
    path = user_store_path()
    notes.append(f"no --store given: collecting the user store {path!r}")
    opened = open_store(path, create=False)
    if opened is None:
        raise StoreError(
            f"no --store given, and no venv-dedupe store at the user store {path!r}; "
            "pass --store DIR with the store to collect"
        )
    return opened


def _remove_unused(
    unused: list[tuple[str, os.stat_result]], errors: list[Problem]
) -> list[os.stat_result]:
    """Unlink each file still unused (dedupe.link checks); the lstat of each removed."""
    removed: list[os.stat_result] = []
    for object_path, st in unused:
        try:
            gone = link.remove_unused(object_path, st.st_ino)
        except OSError as exc:
            errors.append(Problem(object_path, f"cannot remove: {exc.strerror}"))
            continue
        if gone is not None:
            removed.append(gone)
    return removed
