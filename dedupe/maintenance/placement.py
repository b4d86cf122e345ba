"""Which store serves which venv, the objects of a store, and the venv files linked to them."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field

from .. import cow
from ..discovery import Kind, Venv, default_roots, find_venvs
from ..errors import StoreError
from ..problems import Problem, VenvSkip
from ..store import ObjectKey, PycKey, Store, default_store_path, open_store, user_store_path
from ..tree import At, venv_tree

__all__ = [
    "DAMAGED_FOLDER",
    "LockWait",
    "Placement",
    "StoreFiles",
    "StoreObject",
    "list_objects",
    "open_existing",
    "place",
    "place_roots",
    "shared_files",
    "store_files",
]


LockWait = Callable[[str], None]
DAMAGED_FOLDER = "damaged"


@dataclass(frozen=True, slots=True)
class StoreObject:
    path: str
    key: ObjectKey | PycKey
    st: os.stat_result


@dataclass(slots=True)
class Placement:
    """The venvs under the roots, each with the store of its filesystem (or None)."""

    roots: tuple[str, ...]
    stores: dict[str, Store] = field(default_factory=dict)
    venvs: list[tuple[Venv, Store | None]] = field(default_factory=list)
    skipped: list[VenvSkip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def venvs_of(self, store: Store) -> list[Venv]:
        return [v for v, s in self.venvs if s is store]


def open_existing(path: str) -> Store:
    opened = open_store(path, create=False)
    if opened is None:
        raise StoreError(f"no venv-dedupe store at {path!r}; pass --store DIR with the store")
    return opened


def place(venvs: Sequence[Venv], explicit: str | None, roots: tuple[str, ...]) -> Placement:
    """The store of each venv: explicit, or the rule scan uses (never created here)."""
    placement = Placement(roots)
    if explicit is not None:
        only = open_existing(os.path.abspath(explicit))
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


def place_roots(roots: Sequence[str | os.PathLike[str]], store: str | None) -> Placement:
    """Venvs under roots (the well-known venv homes when empty) and their stores; with no
    venv and no --store, the user's store, if there is one."""
    root_list = tuple(os.fspath(r) for r in roots) or tuple(str(p) for p in default_roots())
    discovery = find_venvs(root_list)
    placement = place(discovery.venvs, store, root_list)
    placement.skipped[:0] = [VenvSkip(p, r) for p, r in discovery.skipped]
    placement.notes += [f"no venv or package tree found under {r}" for r in discovery.empty_roots]
    if not placement.stores and not discovery.venvs and store is None:
        path = user_store_path()
        user = open_store(path, create=False)
        if user is not None:
            placement.stores[user.path] = user
            placement.notes.append(f"no venvs found; looking at the user store {path!r}")
        else:
            placement.notes.append(f"no venvs found, and no store at {path!r}")
    return placement


@dataclass(frozen=True, slots=True)
class StoreFiles:
    """The files of a store that venvs may use: its objects, and the damaged ones that
    `verify --repair` moved aside (venvs keep using them until they reinstall)."""

    objects: list[StoreObject]
    damaged: list[tuple[str, os.stat_result]]

    @property
    def unused(self) -> list[tuple[str, os.stat_result]]:
        """The files no venv uses any more: link count 1, the store's own name alone.
        The one definition of unused: status counts these and gc removes these. Names
        outside the roots (another venv, uv's cache) keep a file in use, as they should."""
        every = [(o.path, o.st) for o in self.objects if not _shares_data(o)] + self.damaged
        return [(path, st) for path, st in every if st.st_nlink == 1]


def _shares_data(obj: StoreObject) -> bool:
    """Whether a copy-on-write object shares its data blocks with a file (some venv's:
    the store's copies share none with each other); any other object shares none."""
    if not obj.key.cow:
        return False
    try:
        fd = os.open(obj.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return cow.any_shared(cow.extents(fd))
    except OSError:
        return True  # cannot tell: kept, as an object some venv may share
    finally:
        os.close(fd)


def store_files(store: Store) -> StoreFiles:
    return StoreFiles(list_objects(store), _damaged_files(store))


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


def cow_note(store: Store, objects: list[StoreObject], what: str) -> list[str]:
    """The note for a store holding copy-on-write copies: what `what` means for them."""
    if not any(obj.key.cow for obj in objects):
        return []
    return [
        f"{store.path}: its copy-on-write copies share data blocks with venv files that keep "
        f"their own inodes, so an edit reaches only the file edited; {what}"
    ]


def list_objects(store: Store) -> list[StoreObject]:
    """Every source and pyc object of the store, lstat'ed, by path."""
    found: list[StoreObject] = []
    for key, _generation, entry in store.iter_all():
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        found.append(StoreObject(entry.path, key, st))
    found.sort(key=lambda o: o.path)
    return found


# Which venv files share a store object is found by inode, from directory listings of the
# whole venv (d_ino, no stat per file), so every shared file is found: the sources listed
# in RECORD and the pycs shared beside them. RECORDs only say which distribution a shared
# file belongs to (dedupe.maintenance.owners).


def shared_files(
    venv: Venv, inodes: Container[int], problems: list[Problem]
) -> Iterator[tuple[At, os.stat_result]]:
    """Every regular file under the venv whose inode is in inodes, found through folder
    handles (dedupe.tree): symlinks are never followed and other filesystems never
    entered. A folder that cannot be listed becomes a problem: shared files in it would
    be missed."""
    with venv_tree(venv) as tree:
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                entries = sorted(tree.scandir(rel), key=lambda e: e.name)
            except OSError as exc:
                problems.append(Problem(tree.path(rel), f"cannot list: {exc.strerror or exc}"))
                continue
            if rel and venv.kind is not Kind.VENV and any(e.name == "pyvenv.cfg" for e in entries):
                continue  # a venv inside a package tree (~/.local/share/virtualenvs): its own
            prefix = f"{rel}/" if rel else ""
            subfolders = []
            for entry in entries:
                at = At(tree, prefix + entry.name)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.stat(follow_symlinks=False).st_dev == venv.device:
                            subfolders.append(at.rel)
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
