"""`detach`: private copies, for the venvs named, of every file they share with a store."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .. import link
from ..discovery import Venv, find_venvs
from ..errors import DEFAULT_LOCK_TIMEOUT, DedupeError, UsageError
from ..execute import Failed
from ..journal import BATCH, Entry, Journal
from ..problems import Problem, VenvSkip
from ..store import Store, mount_point
from ..text import human_size
from ..tree import At, split
from .placement import LockWait, Placement, cow_note, list_objects, place, shared_files
from .results import DetachResult, SpaceCheck, VenvDetach

__all__ = ["SPACE_MARGIN", "InsufficientSpaceError", "detach"]


# Room detach leaves free beside the copies: metadata, journals, and whatever else
# writes to the filesystem meanwhile.
SPACE_MARGIN = 64 << 20

# A venv, its files shared with its store (and their lstat), the store's inodes, and
# the store's path.
_Planned = tuple[Venv, list[tuple[At, os.stat_result]], set[int], str]


class InsufficientSpaceError(DedupeError):
    """detach would need more room than the filesystem has; nothing was changed."""


def _venv_at(path: str | os.PathLike[str]) -> Venv:
    real = os.path.realpath(path)
    if not os.path.isfile(os.path.join(real, "pyvenv.cfg")):
        raise UsageError(f"{os.fspath(path)!r} is not a virtualenv (no pyvenv.cfg)")
    discovery = find_venvs([real])
    for venv in discovery.venvs:
        if venv.root == real:
            return venv
    reasons = "; ".join(r for p, r in discovery.skipped if p == real) or "not a virtualenv"
    raise UsageError(f"{os.fspath(path)!r}: {reasons}")


def _space_checks(planned: list[_Planned]) -> tuple[SpaceCheck, ...]:
    by_device: dict[int, tuple[str, int, int]] = {}  # device -> (a venv root, files, bytes)
    for venv, files, _, _ in planned:
        root, count, needed = by_device.get(venv.device, (venv.root, 0, 0))
        by_device[venv.device] = (
            root,
            count + len(files),
            needed + sum(st.st_blocks * 512 for _, st in files),
        )
    checks = []
    for root, count, needed in by_device.values():
        if not count:
            continue
        vfs = os.statvfs(root)
        available = vfs.f_bavail * vfs.f_frsize
        # Filesystems without an inode limit (btrfs) report f_files == 0.
        inodes_ok = vfs.f_files == 0 or vfs.f_favail >= count
        checks.append(
            SpaceCheck(
                mount_point(root),
                count,
                needed,
                available,
                SPACE_MARGIN,
                needed + SPACE_MARGIN <= available and inodes_ok,
            )
        )
    return tuple(checks)


def _unwritable_folder(files: list[tuple[At, os.stat_result]]) -> str | None:
    for folder in sorted({at.parent() for at, _ in files}, key=lambda f: f.rel):
        if not folder.writable():
            return folder.path
    return None


def detach(
    venvs: Sequence[str | os.PathLike[str]],
    store: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_lock_wait: LockWait | None = None,
) -> DetachResult:
    """Give each venv private copies of every file it shares with the store: same bytes,
    mode, owner and times, each swapped in atomically.

    Refuses (InsufficientSpaceError, nothing changed) when a filesystem lacks the room
    for the copies plus SPACE_MARGIN; with dry_run, says what it would do and the space.
    """
    if not venvs:
        raise UsageError("name at least one venv to detach")
    found = _venvs_named(venvs)
    roots = tuple(found)
    placement = place(list(found.values()), os.fspath(store) if store else None, roots)
    locked: list[Store] = []
    errors: list[Problem] = []
    try:
        if not dry_run:
            for store_ in sorted(placement.stores.values(), key=lambda s: s.path):
                store_.lock(timeout=lock_timeout, on_wait=on_lock_wait)
                locked.append(store_)
        # Planned under the lock, so that no scan adds links meanwhile.
        planned, reports = _plan(placement)
        space = _space_checks(planned)
        short = [c for c in space if not c.fits]
        if short and not dry_run:
            raise InsufficientSpaceError(_no_room_message(short))
        if not dry_run:
            _carry_out(planned, reports, errors)
    finally:
        for store_ in locked:
            store_.unlock()
    result_venvs = tuple(reports[root] for root in roots if root in reports)
    return DetachResult(
        dry_run=dry_run,
        venvs=result_venvs,
        skipped_venvs=tuple(placement.skipped),
        space=space,
        files_shared=sum(v.files_shared for v in result_venvs),
        files_detached=sum(v.files_detached for v in result_venvs),
        bytes_needed=sum(v.bytes_needed for v in result_venvs),
        errors=tuple(errors),
        notes=tuple(placement.notes),
    )


def _venvs_named(venvs: Sequence[str | os.PathLike[str]]) -> dict[str, Venv]:
    """The venvs at the paths given, by root, each once."""
    found: dict[str, Venv] = {}
    for path in venvs:
        venv = _venv_at(path)
        found.setdefault(venv.root, venv)
    return found


def _plan(placement: Placement) -> tuple[list[_Planned], dict[str, VenvDetach]]:
    """Each venv's shared files, and what it has to detach; a venv whose shared files
    could be missed, or whose folders cannot be written, is skipped whole."""
    planned: list[_Planned] = []
    inodes_of: dict[str, set[int]] = {}
    reports: dict[str, VenvDetach] = {}
    for venv, venv_store in placement.venvs:
        if venv_store is None:
            reports[venv.root] = VenvDetach(venv.root, None, 0, 0, 0)
            continue
        if venv_store.path not in inodes_of:
            objects = list_objects(venv_store)
            inodes_of[venv_store.path] = {o.st.st_ino for o in objects}
            placement.notes += cow_note(venv_store, objects, "they need no detaching")
        inodes = inodes_of[venv_store.path]
        problems: list[Problem] = []
        files = list(shared_files(venv, inodes, problems))
        unwritable = _unwritable_folder(files)
        _close_handles(files)
        if problems or unwritable:
            reason = (
                f"cannot list {problems[0].path!r}: shared files could be missed"
                if problems
                else f"cannot write the folder {unwritable!r}"
            )
            placement.skipped.append(VenvSkip(venv.root, f"{reason}; nothing detached"))
            continue
        planned.append((venv, files, inodes, venv_store.path))
        needed = sum(st.st_blocks * 512 for _, st in files)
        reports[venv.root] = VenvDetach(venv.root, venv_store.path, len(files), needed, 0)
    return planned, reports


def _carry_out(
    planned: list[_Planned], reports: dict[str, VenvDetach], errors: list[Problem]
) -> None:
    """Detach the planned files; reports get how many of each venv's were detached. Each
    batch of them is in the store's journal while its copies are made: a kill leaves
    temp names beside them, which the next scan removes even if pip uninstalled their
    distribution meanwhile (no pyc goes stale: a copy keeps its original's mtime)."""
    for venv, files, inodes, store_path in planned:
        journal = Journal(store_path)
        done = 0
        try:
            for start in range(0, len(files), BATCH):
                batch = files[start : start + BATCH]
                folders = tuple(sorted({split(at.rel)[0] for at, _ in batch}))
                entry = Entry(root=venv.root, device=venv.device, ino=venv.ino, folders=folders)
                with journal.pending(entry):
                    done += _detach_files(batch, inodes, errors)
        finally:
            _close_handles(files)
        old = reports[venv.root]
        reports[venv.root] = VenvDetach(
            old.path, old.store, old.files_shared, old.bytes_needed, done
        )


def _close_handles(files: list[tuple[At, os.stat_result]]) -> None:
    """Close the folder handles that a venv's files hold open: a detach of many venvs
    must not keep a tree of handles open for each (a later use opens them again, and
    checks each folder is the one first opened)."""
    for tree in {id(at.tree): at.tree for at, _ in files}.values():
        tree.close()


def _detach_files(
    files: list[tuple[At, os.stat_result]], inodes: set[int], errors: list[Problem]
) -> int:
    done = 0
    for at, st in files:
        try:
            link.make_private(at, st.st_ino)
            done += 1
        except Failed as exc:
            try:
                still_shared = at.lstat().st_ino in inodes
            except OSError:
                still_shared = False
            # A file pip replaced meanwhile is private already; anything else is an error.
            if exc.error or still_shared:
                errors.append(Problem(at.path, str(exc)))
    return done


def _no_room_message(short: list[SpaceCheck]) -> str:
    parts = [
        f"the private copies of {c.files:,} shared file(s) need {human_size(c.bytes_needed)} "
        f"on the filesystem at {c.mount_point!r}, which has {human_size(c.bytes_available)} "
        f"free (keeping {human_size(c.margin)} spare)"
        for c in short
    ]
    return (
        "not enough room to detach: "
        + "; ".join(parts)
        + ". Nothing was changed; free some space or detach fewer venvs at a time"
    )
