"""Store maintenance: what sharing saves (status), whether store objects still hold what
their names say (verify), private copies for a venv (detach), and removing objects that
no venv uses (gc). This module decides and accounts; dedupe.link makes every change.

Which venv files share a store object is found by inode, from directory listings of the
whole venv (d_ino, no stat per file), so every shared file is found: the sources listed
in RECORD and the pycs shared beside them. RECORDs only say which distribution a shared
file belongs to.
"""

from __future__ import annotations

import contextlib
import importlib.util
import marshal
import os
import shlex
import stat
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .. import link, memo
from ..bytecode import HEADER_SIZE, parse_header
from ..discovery import Venv, default_roots, find_venvs
from ..errors import DEFAULT_LOCK_TIMEOUT, DedupeError, StoreError, UsageError
from ..execute import Failed
from ..hashing import FileChanged, digest_file, read_small
from ..inventory import dist_infos, read_text
from ..problems import Problem, VenvSkip
from ..records import RecordError, parse_record
from ..store import (
    ObjectKey,
    PycKey,
    Store,
    default_store_path,
    mount_point,
    open_store,
    saved_bytes,
    user_store_path,
)
from ..text import human_size
from ..tree import At, Tree

LockWait = Callable[[str], None]

# Room detach leaves free beside the copies: metadata, journals, and whatever else
# writes to the filesystem meanwhile.
SPACE_MARGIN = 64 << 20
DAMAGED_FOLDER = "damaged"
_OBJECT_TREES = ("objects", "pyc")
_MAX_PYC_BYTES = 256 << 20


class InsufficientSpaceError(DedupeError):
    """detach would need more room than the filesystem has; nothing was changed."""


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Distribution:
    name: str  # packaging.utils.canonicalize_name
    version: str  # packaging's normal form where it parses, else as written

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name


_RepairKey = tuple[str, "Distribution | None"]  # (venv, distribution)


@dataclass(frozen=True, slots=True)
class StoreStatus:
    path: str
    objects: int
    unused_objects: int  # link count 1: no venv uses them; gc removes them
    unused_bytes: int  # allocated bytes gc would free
    allocated_bytes: int  # of every object
    bytes_saved: int  # allocated bytes that sharing saves now
    links_outside_roots: int  # names of its objects not found in the venvs looked at


@dataclass(frozen=True, slots=True)
class VenvStatus:
    path: str
    store: str | None  # None: no store exists for its filesystem
    files_shared: int
    bytes_saved: int  # its share of what the objects it links to save


@dataclass(frozen=True, slots=True)
class DistributionStatus:
    name: str
    version: str
    venvs: int
    files_shared: int
    bytes_saved: int


@dataclass(frozen=True, slots=True)
class StatusResult:
    roots: tuple[str, ...]
    stores: tuple[StoreStatus, ...]
    venvs: tuple[VenvStatus, ...]
    distributions: tuple[DistributionStatus, ...]
    skipped_venvs: tuple[VenvSkip, ...]
    objects: int
    unused_objects: int
    unused_bytes: int
    bytes_saved: int  # over every object of the stores, whoever links to them
    files_shared: int
    notes: tuple[str, ...]
    warnings: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class LinkedFile:
    """A venv file that is a name of a damaged object: it holds the damaged bytes too."""

    path: str
    venv: str
    distribution: Distribution | None  # None: no RECORD of the venv lists it


@dataclass(frozen=True, slots=True)
class DamagedObject:
    path: str
    store: str
    problem: str
    other_links: int  # names besides the store's own (link count - 1)
    linked_files: tuple[LinkedFile, ...]
    moved_to: str | None  # where --repair moved it


@dataclass(frozen=True, slots=True)
class VenvRepair:
    """What gives one venv intact files of one distribution again."""

    venv: str
    distribution: Distribution | None
    command: str | None
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    roots: tuple[str, ...]
    stores: tuple[str, ...]
    objects_checked: int
    damaged: tuple[DamagedObject, ...]
    repairs: tuple[VenvRepair, ...]
    repair: bool  # --repair was asked for
    skipped_venvs: tuple[VenvSkip, ...]
    errors: tuple[Problem, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.errors


@dataclass(frozen=True, slots=True)
class SpaceCheck:
    """Room on one filesystem for the private copies detach makes there."""

    mount_point: str
    files: int
    bytes_needed: int
    bytes_available: int  # f_bavail * f_frsize
    margin: int
    fits: bool


@dataclass(frozen=True, slots=True)
class VenvDetach:
    path: str
    store: str | None
    files_shared: int
    bytes_needed: int
    files_detached: int


@dataclass(frozen=True, slots=True)
class DetachResult:
    dry_run: bool
    venvs: tuple[VenvDetach, ...]
    skipped_venvs: tuple[VenvSkip, ...]
    space: tuple[SpaceCheck, ...]
    files_shared: int
    files_detached: int
    bytes_needed: int
    errors: tuple[Problem, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GcResult:
    dry_run: bool
    store: str
    objects: int  # before the run, damaged ones included
    files_removed: int
    bytes_freed: int  # allocated: what du shows
    apparent_bytes_freed: int
    folders_removed: int
    errors: tuple[Problem, ...]
    notes: tuple[str, ...]


# --- stores, objects and the venv files linked to them ---------------------------------------


@dataclass(frozen=True, slots=True)
class _Object:
    path: str
    key: ObjectKey | PycKey
    st: os.stat_result


@dataclass(slots=True)
class _Placement:
    """The venvs under the roots, each with the store of its filesystem (or None)."""

    roots: tuple[str, ...]
    stores: dict[str, Store] = field(default_factory=dict)
    venvs: list[tuple[Venv, Store | None]] = field(default_factory=list)
    skipped: list[VenvSkip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def venvs_of(self, store: Store) -> list[Venv]:
        return [v for v, s in self.venvs if s is store]


def _open_existing(path: str) -> Store:
    opened = open_store(path, create=False)
    if opened is None:
        raise StoreError(f"no venv-dedupe store at {path!r}; pass --store DIR with the store")
    return opened


def _place(venvs: Sequence[Venv], explicit: str | None, roots: tuple[str, ...]) -> _Placement:
    """The store of each venv: explicit, or the rule scan uses (never created here)."""
    placement = _Placement(roots)
    if explicit is not None:
        only = _open_existing(os.path.abspath(explicit))
        placement.stores[only.path] = only
    missing: set[str] = set()
    for venv in venvs:
        if explicit is not None:
            store: Store | None = next(iter(placement.stores.values()))
        else:
            path = default_store_path(venv.root, venv.device)
            store = placement.stores.get(path)
            if store is None and path not in missing:
                store = open_store(path, create=False)
                if store is None:
                    missing.add(path)
                    placement.notes.append(
                        f"no store at {path!r} (the default for {venv.root!r}): nothing on "
                        "that filesystem is shared; pass --store DIR if scan used another"
                    )
                else:
                    placement.stores[store.path] = store
        if store is not None and store.device != venv.device:
            placement.skipped.append(
                VenvSkip(venv.root, f"on another filesystem than the store {store.path!r}")
            )
            continue
        placement.venvs.append((venv, store))
    return placement


def _place_roots(roots: Sequence[str | os.PathLike[str]], store: str | None) -> _Placement:
    """Venvs under roots (the well-known venv homes when empty) and their stores; with no
    venv and no --store, the user's store, if there is one."""
    root_list = tuple(os.fspath(r) for r in roots) or tuple(str(p) for p in default_roots())
    discovery = find_venvs(root_list)
    placement = _place(discovery.venvs, store, root_list)
    placement.skipped[:0] = [VenvSkip(p, r) for p, r in discovery.skipped]
    if not placement.stores and not discovery.venvs and store is None:
        path = user_store_path()
        user = open_store(path, create=False)
        if user is not None:
            placement.stores[user.path] = user
            placement.notes.append(f"no venvs found; looking at the user store {path!r}")
        else:
            placement.notes.append(f"no venvs found, and no store at {path!r}")
    return placement


def _objects(store: Store) -> list[_Object]:
    """Every source and pyc object of the store, lstat'ed, by path."""
    found: list[_Object] = []
    for key, _generation, entry in store.iter_all():
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        found.append(_Object(entry.path, key, st))
    found.sort(key=lambda o: o.path)
    return found


def _shared_files(
    venv: Venv, inodes: Container[int], problems: list[Problem]
) -> Iterator[tuple[At, os.stat_result]]:
    """Every regular file under the venv whose inode is in inodes, found through folder
    handles (dedupe.tree): symlinks are never followed and other filesystems never
    entered. A folder that cannot be listed becomes a problem: shared files in it would
    be missed."""
    with Tree(venv.root) as tree:
        stack: list[tuple[str, int | None]] = [("", None)]
        while stack:
            rel, ino = stack.pop()
            try:
                entries = sorted(tree.scandir(rel, ino), key=lambda e: e.name)
            except OSError as exc:
                problems.append(Problem(tree.path(rel), f"cannot list: {exc.strerror or exc}"))
                continue
            prefix = f"{rel}/" if rel else ""
            subfolders = []
            for entry in entries:
                at = At(tree, prefix + entry.name)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.stat(follow_symlinks=False).st_dev == venv.device:
                            subfolders.append((at.rel, entry.inode()))
                    elif entry.inode() in inodes and entry.is_file(follow_symlinks=False):
                        st = at.lstat()
                        if (
                            stat.S_ISREG(st.st_mode)
                            and st.st_dev == venv.device
                            and st.st_ino in inodes
                        ):
                            yield at, st
                except OSError:
                    continue
            stack.extend(reversed(subfolders))


# --- which distribution a file belongs to ------------------------------------------------------


def distribution_of(dist_info_name: str) -> Distribution:
    """Name and version from a .dist-info folder name (`name-version.dist-info`),
    normalised with packaging."""
    stem = dist_info_name.removesuffix(".dist-info")
    name, _, version = stem.partition("-")
    with contextlib.suppress(InvalidVersion):
        version = str(Version(version))
    return Distribution(str(canonicalize_name(name)), version)


@dataclass(frozen=True, slots=True)
class _Owner:
    distribution: Distribution
    installer: str  # the dist-info's INSTALLER: "pip", "uv", ... or ""


class _Owners:
    """Which distribution installed each file of one venv, read from its RECORDs once."""

    def __init__(self, venv: Venv) -> None:
        self.venv = venv
        self._by_path: dict[str, _Owner] | None = None
        self.has_pip = False

    def _load(self) -> dict[str, _Owner]:
        by_path: dict[str, _Owner] = {}
        for site_packages in self.venv.site_packages:
            for dist_info in dist_infos(site_packages):
                folder = os.path.join(site_packages, dist_info)
                try:
                    text = read_text(os.path.join(folder, "RECORD"))
                except OSError:
                    continue
                try:
                    entries = parse_record(text.splitlines())
                except RecordError as exc:
                    entries = exc.entries
                try:
                    installer = read_text(os.path.join(folder, "INSTALLER"), 1024).strip()
                except OSError:
                    installer = ""
                owner = _Owner(distribution_of(dist_info), installer)
                self.has_pip |= owner.distribution.name == "pip"
                for entry in entries:
                    path = os.path.normpath(os.path.join(site_packages, entry.path))
                    by_path.setdefault(path, owner)
        return by_path

    def of(self, path: str) -> _Owner | None:
        if self._by_path is None:
            self._by_path = self._load()
        owner = self._by_path.get(path)
        folder, name = os.path.split(path)
        if owner is None and os.path.basename(folder) == "__pycache__":
            # A pyc belongs to its source's distribution (uv does not list pycs in RECORD).
            source = os.path.join(os.path.dirname(folder), name.split(".", 1)[0] + ".py")
            owner = self._by_path.get(source)
        return owner


def repair_command(venv_root: str, owner: _Owner, has_pip: bool) -> str:
    """The command that reinstalls one distribution in one venv, giving it fresh files
    (the installer unlinks the damaged names rather than writing through them)."""
    python = shlex.quote(os.path.join(venv_root, "bin", "python"))
    requirement = shlex.quote(str(owner.distribution))
    if owner.installer == "uv":
        return f"uv pip install --python {python} --reinstall --no-deps {requirement}"
    if has_pip:
        return f"{python} -m pip install --force-reinstall --no-deps {requirement}"
    # A venv made --without-pip (or by uv) is served by an outer pip >= 22.3.
    return f"python3 -m pip --python {python} install --force-reinstall --no-deps {requirement}"


# --- status --------------------------------------------------------------------------------


def status(
    roots: Sequence[str | os.PathLike[str]] = (), store: str | os.PathLike[str] | None = None
) -> StatusResult:
    """What sharing saves now: in total, per venv and per distribution.

    An object with link count n >= 2 saves (n - 2) * its allocated bytes: its n - 1 venv
    names share one inode that n - 1 copies would otherwise need. Each name is given an
    equal share of that, so the venvs' shares add up to the total when every name of
    every object is under the roots.
    """
    placement = _place_roots(roots, os.fspath(store) if store is not None else None)
    warnings: list[Problem] = []
    venv_files = [0] * len(placement.venvs)
    venv_saved = [0] * len(placement.venvs)
    dists: dict[Distribution, list[int]] = {}  # -> [files, bytes]
    dist_venvs: dict[Distribution, set[int]] = {}
    store_reports = []
    for store_ in placement.stores.values():
        objects = {o.st.st_ino: o for o in _objects(store_)}
        holders: dict[int, list[tuple[int, Distribution | None]]] = {}
        for index, (venv, venv_store) in enumerate(placement.venvs):
            if venv_store is not store_:
                continue
            owners = _Owners(venv)
            for at, st in _shared_files(venv, objects.keys(), warnings):
                owner = owners.of(at.path)
                dist = owner.distribution if owner is not None else None
                holders.setdefault(st.st_ino, []).append((index, dist))
        saved_total = unused = unused_bytes = allocated = outside = 0
        for ino, obj in objects.items():
            blocks = obj.st.st_blocks * 512
            allocated += blocks
            names = obj.st.st_nlink - 1
            if names == 0:
                unused += 1
                unused_bytes += blocks
                continue
            saved = saved_bytes(obj.st)
            saved_total += saved
            found = holders.get(ino, [])[:names]
            outside += names - len(found)
            base, remainder = divmod(saved, names)
            for i, (index, dist) in enumerate(found):
                share = base + (1 if i < remainder else 0)
                venv_files[index] += 1
                venv_saved[index] += share
                if dist is not None:
                    totals = dists.setdefault(dist, [0, 0])
                    totals[0] += 1
                    totals[1] += share
                    dist_venvs.setdefault(dist, set()).add(index)
        store_reports.append(
            StoreStatus(
                store_.path,
                len(objects),
                unused,
                unused_bytes,
                allocated,
                saved_total,
                outside,
            )
        )
    return StatusResult(
        roots=placement.roots,
        stores=tuple(store_reports),
        venvs=tuple(
            VenvStatus(v.root, s.path if s else None, venv_files[i], venv_saved[i])
            for i, (v, s) in enumerate(placement.venvs)
        ),
        distributions=tuple(
            DistributionStatus(d.name, d.version, len(dist_venvs[d]), files, saved)
            for d, (files, saved) in sorted(dists.items())
        ),
        skipped_venvs=tuple(placement.skipped),
        objects=sum(s.objects for s in store_reports),
        unused_objects=sum(s.unused_objects for s in store_reports),
        unused_bytes=sum(s.unused_bytes for s in store_reports),
        bytes_saved=sum(s.bytes_saved for s in store_reports),
        files_shared=sum(venv_files),
        notes=tuple(placement.notes),
        warnings=tuple(warnings),
    )


# --- verify --------------------------------------------------------------------------------


def _metadata_problem(st: os.stat_result, uid: int, gid: int, mode: int) -> str | None:
    found = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    if found == (uid, gid, mode):
        return None
    return (
        f"owner or mode is uid {found[0]} gid {found[1]} mode {found[2]:o}, its name says "
        f"uid {uid} gid {gid} mode {mode:o}: someone ran chown or chmod on a file linked to it"
    )


def _check_source(obj: _Object, key: ObjectKey) -> str | None:
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


def _check_pyc(obj: _Object, key: PycKey) -> str | None:
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


def check_object(obj: _Object) -> str | None:
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
    placement = _place_roots(roots, os.fspath(store) if store is not None else None)
    damaged: list[DamagedObject] = []
    errors: list[Problem] = []
    commands: dict[_RepairKey, str | None] = {}
    checked = 0
    for store_ in placement.stores.values():
        if repair:
            store_.lock(timeout=lock_timeout, on_wait=on_lock_wait)
        try:
            bad: list[tuple[_Object, str]] = []
            for obj in _objects(store_):
                checked += 1
                problem = check_object(obj)
                if problem is not None:
                    bad.append((obj, problem))
            inodes = {o.st.st_ino for o, _ in bad}
            linked = _linked_to(placement.venvs_of(store_), inodes, commands, errors)
            for obj, problem in bad:
                moved_to = None
                if repair:
                    destination = _quarantine_path(store_, obj.path)
                    try:
                        link.quarantine(obj.path, destination)
                        moved_to = destination
                    except OSError as exc:
                        errors.append(
                            Problem(obj.path, f"cannot move it out of the store: {exc.strerror}")
                        )
                damaged.append(
                    DamagedObject(
                        obj.path,
                        store_.path,
                        problem,
                        obj.st.st_nlink - 1,
                        tuple(linked.get(obj.st.st_ino, [])),
                        moved_to,
                    )
                )
            if any(d.moved_to for d in damaged if d.store == store_.path):
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


def _linked_to(
    venvs: list[Venv],
    inodes: set[int],
    commands: dict[_RepairKey, str | None],
    problems: list[Problem],
) -> dict[int, list[LinkedFile]]:
    """inode -> the venv files that are its names; commands gets each one's repair."""
    found: dict[int, list[LinkedFile]] = {}
    if not inodes:
        return found
    for venv in venvs:
        owners = _Owners(venv)
        for at, st in _shared_files(venv, inodes, problems):
            owner = owners.of(at.path)
            dist = None if owner is None else owner.distribution
            found.setdefault(st.st_ino, []).append(LinkedFile(at.path, venv.root, dist))
            if owner is not None:
                commands[venv.root, dist] = repair_command(venv.root, owner, owners.has_pip)
    return found


def _repairs(
    damaged: list[DamagedObject], commands: dict[_RepairKey, str | None]
) -> tuple[VenvRepair, ...]:
    paths: dict[_RepairKey, list[str]] = {}
    for obj in damaged:
        for f in obj.linked_files:
            paths.setdefault((f.venv, f.distribution), []).append(f.path)
    return tuple(
        VenvRepair(venv, dist, commands.get((venv, dist)), tuple(sorted(p)))
        for (venv, dist), p in sorted(paths.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
    )


# --- detach --------------------------------------------------------------------------------


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


def _space_checks(
    planned: list[tuple[Venv, list[tuple[At, os.stat_result]], set[int]]],
) -> tuple[SpaceCheck, ...]:
    by_device: dict[int, tuple[str, int, int]] = {}  # device -> (a venv root, files, bytes)
    for venv, files, _ in planned:
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
    found: dict[str, Venv] = {}
    for path in venvs:
        venv = _venv_at(path)
        found.setdefault(venv.root, venv)
    roots = tuple(found)
    placement = _place(list(found.values()), os.fspath(store) if store else None, roots)
    locked: list[Store] = []
    errors: list[Problem] = []
    try:
        if not dry_run:
            for store_ in sorted(placement.stores.values(), key=lambda s: s.path):
                store_.lock(timeout=lock_timeout, on_wait=on_lock_wait)
                locked.append(store_)
        # Planned under the lock, so that no scan adds links meanwhile.
        planned: list[tuple[Venv, list[tuple[At, os.stat_result]], set[int]]] = []
        inodes_of: dict[str, set[int]] = {}
        reports: dict[str, VenvDetach] = {}
        for venv, venv_store in placement.venvs:
            if venv_store is None:
                reports[venv.root] = VenvDetach(venv.root, None, 0, 0, 0)
                continue
            if venv_store.path not in inodes_of:
                inodes_of[venv_store.path] = {o.st.st_ino for o in _objects(venv_store)}
            inodes = inodes_of[venv_store.path]
            problems: list[Problem] = []
            files = list(_shared_files(venv, inodes, problems))
            unwritable = _unwritable_folder(files)
            if problems or unwritable:
                reason = (
                    f"cannot list {problems[0].path!r}: shared files could be missed"
                    if problems
                    else f"cannot write the folder {unwritable!r}"
                )
                placement.skipped.append(VenvSkip(venv.root, f"{reason}; nothing detached"))
                continue
            planned.append((venv, files, inodes))
            needed = sum(st.st_blocks * 512 for _, st in files)
            reports[venv.root] = VenvDetach(venv.root, venv_store.path, len(files), needed, 0)
        space = _space_checks(planned)
        short = [c for c in space if not c.fits]
        if short and not dry_run:
            raise InsufficientSpaceError(_no_room_message(short))
        if not dry_run:
            for venv, files, inodes in planned:
                done = _detach_files(files, inodes, errors)
                old = reports[venv.root]
                reports[venv.root] = VenvDetach(
                    old.path, old.store, old.files_shared, old.bytes_needed, done
                )
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


# --- gc ----------------------------------------------------------------------------------


def _damaged_files(store: Store) -> list[tuple[str, os.stat_result]]:
    found = []
    for folder, dirs, files in os.walk(os.path.join(store.path, DAMAGED_FOLDER)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((path, st))
    return found


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
    notes = []
    if store is None:
        path = user_store_path()
        notes.append(f"no --store given: collecting the user store {path!r}")
        opened = open_store(path, create=False)
        if opened is None:
            raise StoreError(
                f"no --store given, and no venv-dedupe store at the user store {path!r}; "
                "pass --store DIR with the store to collect"
            )
        store_ = opened
    else:
        store_ = _open_existing(os.path.abspath(os.fspath(store)))
    errors: list[Problem] = []
    if not dry_run:
        store_.lock(timeout=lock_timeout, on_wait=on_lock_wait)
    try:
        candidates = [(o.path, o.st) for o in _objects(store_)]
        candidates += _damaged_files(store_)
        total = len(candidates)
        unused = [(p, st) for p, st in candidates if st.st_nlink == 1]
        removed: list[os.stat_result] = []
        if dry_run:
            removed = [st for _, st in unused]
        else:
            for object_path, st in unused:
                try:
                    gone = link.remove_unused(object_path, st.st_ino)
                except OSError as exc:
                    errors.append(Problem(object_path, f"cannot remove: {exc.strerror}"))
                    continue
                if gone is not None:
                    removed.append(gone)
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
        objects=total,
        files_removed=len(removed),
        bytes_freed=sum(st.st_blocks * 512 for st in removed),
        apparent_bytes_freed=sum(st.st_size for st in removed),
        folders_removed=len(folders),
        errors=tuple(errors),
        notes=tuple(notes),
    )
