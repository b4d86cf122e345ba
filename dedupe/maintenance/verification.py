"""`verify`: re-hash store objects against their names; move damaged ones aside."""

from __future__ import annotations

import importlib.util
import marshal
import os
import stat
from collections.abc import Sequence

from .. import link, memo
from ..bytecode import HEADER_SIZE, parse_header
from ..caches import cache_folders, find_names
from ..discovery import Venv
from ..errors import DEFAULT_LOCK_TIMEOUT
from ..hashing import FileChanged, digest_file, read_small
from ..problems import Problem
from ..store import COW_OBJECT_MODE, ObjectKey, PycKey, Store
from .owners import Owners, repair_command
from .placement import (
    DAMAGED_FOLDER,
    LockWait,
    StoreObject,
    cow_note,
    list_objects,
    place_roots,
    shared_files,
    store_files,
)
from .results import DamagedObject, Distribution, LinkedFile, VenvRepair, VerifyResult

__all__ = ["check_object", "verify"]


_MAX_PYC_BYTES = 256 << 20
_RepairKey = tuple[str, "Distribution | None"]  # (venv, distribution)
_Commands = dict[_RepairKey, tuple[str, "str | None"]]  # -> (command, note)


def _metadata_problem(st: os.stat_result, uid: int, gid: int, mode: int) -> str | None:
    found = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    if (uid, gid, mode) == (0, 0, 0):
        # A copy-on-write object: the store's own copy, which shares no inode with a
        # venv, so no venv's chmod reaches it. Its mode says it was made so.
        if found[2] == COW_OBJECT_MODE:
            return None
        return f"mode is {found[2]:o}, not the {COW_OBJECT_MODE:o} of a copy-on-write object"
    if found == (uid, gid, mode):
        return None
    return (
        f"owner or mode is uid {found[0]} gid {found[1]} mode {found[2]:o}, its name says "
        f"uid {uid} gid {gid} mode {mode:o}: someone ran chown or chmod on a file linked to it"
    )


def _check_source(obj: StoreObject, key: ObjectKey) -> str | None:
    problem = _metadata_problem(obj.st, key.uid, key.gid, key.mode)
    if problem is not None:
        return problem
    try:
        digest = digest_file(obj.path, key.algorithm)
    except ValueError:
        return f"its name has a hash algorithm this Python lacks: {key.algorithm!r}"
    except FileChanged:
        return "it changed while it was read: something writes to a file linked to it"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if digest != key.digest:
        return (
            f"its bytes no longer match its name ({key.algorithm}): a file linked to it "
            "was edited in place"
        )
    return None


def _check_pyc(obj: StoreObject, key: PycKey) -> str | None:
    """A pyc object is named by what makes it valid, not by its bytes: check what its
    name says (magic, flags, owner, mode) and, for this interpreter, that it unmarshals."""
    problem = _metadata_problem(obj.st, key.uid, key.gid, key.mode)
    if problem is not None:
        return problem
    try:
        raw = read_small(obj.path, _MAX_PYC_BYTES)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    try:
        header = parse_header(raw[:HEADER_SIZE])
    except ValueError as exc:
        return f"its header is no longer a pyc header ({exc}): it was edited in place"
    if (header.magic, header.flags) != (key.magic, key.flags):
        return "its header no longer matches its name: a file linked to it was edited in place"
    if header.magic == importlib.util.MAGIC_NUMBER:
        try:
            marshal.loads(raw[HEADER_SIZE:])
        except (EOFError, ValueError, TypeError):
            return "it no longer holds valid bytecode: a file linked to it was edited in place"
    return None


def check_object(obj: StoreObject) -> str | None:
    """Why a store object must not be used any more, or None when it is what its name says."""
    if isinstance(obj.key, PycKey):
        return _check_pyc(obj, obj.key)
    return _check_source(obj, obj.key)


def _quarantine_path(store: Store, path: str) -> str:
    relative = os.path.relpath(path, store.path)
    destination = os.path.join(store.path, DAMAGED_FOLDER, relative)
    candidate, n = destination, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = f"{destination}.{n}"
    return candidate


def verify(
    roots: Sequence[str | os.PathLike[str]] = (),
    store: str | os.PathLike[str] | None = None,
    repair: bool = False,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_lock_wait: LockWait | None = None,
) -> VerifyResult:
    """Re-hash every store object against its name; name every venv file linked to a
    damaged one, with its distribution and the command that repairs each venv.

    With repair, damaged objects move to STORE/damaged/ under the store's lock, so that
    no later scan links anything to them; the venv files linked to them keep their bytes
    until the repair commands are run.
    """
    placement = place_roots(roots, os.fspath(store) if store is not None else None)
    damaged: list[DamagedObject] = []
    errors: list[Problem] = []
    commands: _Commands = {}
    checked = 0
    for store_ in placement.stores.values():
        if repair:
            store_.lock(timeout=lock_timeout, on_wait=on_lock_wait)
        try:
            objects, bad = _check_all(store_)
            checked += len(objects)
            what = "no venv can change them, and they are checked all the same"
            placement.notes += cow_note(store_, objects, what)
            venvs = placement.venvs_of(store_)
            found = _damaged(store_, (objects, bad), venvs, repair, commands, errors)
            damaged += found
            if any(d.moved_to for d in found):
                memo.drop_all(store_)
        finally:
            store_.unlock()
    return VerifyResult(
        roots=placement.roots,
        stores=tuple(placement.stores),
        objects_checked=checked,
        damaged=tuple(damaged),
        repairs=_repairs(damaged, commands),
        repair=repair,
        skipped_venvs=tuple(placement.skipped),
        errors=tuple(errors),
        notes=tuple(placement.notes),
    )


def _check_all(store: Store) -> tuple[list[StoreObject], list[tuple[StoreObject, str]]]:
    """The store's objects, and each damaged one with its problem."""
    objects = list_objects(store)
    bad: list[tuple[StoreObject, str]] = []
    for obj in objects:
        problem = check_object(obj)
        if problem is not None:
            bad.append((obj, problem))
    return objects, bad


def _damaged(
    store: Store,
    checked: tuple[list[StoreObject], list[tuple[StoreObject, str]]],
    venvs: list[Venv],
    repair: bool,
    commands: _Commands,
    errors: list[Problem],
) -> list[DamagedObject]:
    """The store's damaged objects with the venv files linked to them; with repair, each
    moved to STORE/damaged/ first."""
    objects, bad = checked
    # A venv file that is a name of an object, or of a damaged one moved aside, says
    # nothing of how its installer linked it.
    every = {o.st.st_ino for o in objects} | {st.st_ino for _, st in store_files(store).damaged}
    linked = _linked_to(venvs, ({o.st.st_ino for o, _ in bad}, every), commands, errors)
    found = []
    for obj, problem in bad:
        moved_to = _move_aside(store, obj, errors) if repair else None
        files = tuple(linked.get(obj.st.st_ino, []))
        # Names outside the venvs: in uv's cache, it holds the damaged bytes too, and a
        # reinstall that links from the cache would bring them back.
        outside = obj.st.st_nlink - 1 - len(files)
        wanted = {(obj.st.st_dev, obj.st.st_ino): outside} if outside > 0 else {}
        found.append(
            DamagedObject(
                path=obj.path,
                store=store.path,
                problem=problem,
                other_links=obj.st.st_nlink - 1,
                linked_files=files,
                moved_to=moved_to,
                outside_roots=find_names(wanted, cache_folders() if wanted else []),
            )
        )
    return found


def _move_aside(store: Store, obj: StoreObject, errors: list[Problem]) -> str | None:
    """Where the damaged object now is, or None (and an error) when it could not move."""
    destination = _quarantine_path(store, obj.path)
    try:
        link.quarantine(obj.path, destination)
    except OSError as exc:
        errors.append(Problem(obj.path, f"cannot move it out of the store: {exc.strerror}"))
        return None
    return destination


def _linked_to(
    venvs: list[Venv],
    wanted: tuple[set[int], set[int]],
    commands: _Commands,
    problems: list[Problem],
) -> dict[int, list[LinkedFile]]:
    """inode -> the venv files that are its names (inodes: the damaged objects', and every
    object's); commands gets each one's repair."""
    inodes, every = wanted
    found: dict[int, list[LinkedFile]] = {}
    if not inodes:
        return found
    for venv in venvs:
        owners = Owners(venv)
        for at, st in shared_files(venv, inodes, problems):
            owner = owners.of(at.path)
            dist = None if owner is None else owner.distribution
            found.setdefault(st.st_ino, []).append(LinkedFile(at.path, venv.root, dist))
            if owner is not None and (venv.root, dist) not in commands:
                mode = owners.uv_link_mode(owner.distribution, every)
                commands[venv.root, dist] = repair_command(venv.root, owner, owners.has_pip, mode)
    return found


def _repairs(damaged: list[DamagedObject], commands: _Commands) -> tuple[VenvRepair, ...]:
    paths: dict[_RepairKey, list[str]] = {}
    for obj in damaged:
        for f in obj.linked_files:
            paths.setdefault((f.venv, f.distribution), []).append(f.path)
    return tuple(
        VenvRepair(
            venv=venv,
            distribution=dist,
            command=commands[venv, dist][0] if (venv, dist) in commands else None,
            paths=tuple(sorted(p)),
            note=commands[venv, dist][1] if (venv, dist) in commands else None,
        )
        for (venv, dist), p in sorted(paths.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
    )
