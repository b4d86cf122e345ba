"""Directory listings of a venv, read through its folder handles: each folder resolved
once, component by component from the root, and the pycs beside each source.

A folder is usable when every component from the venv root down is a real folder (not a
symlink) that could be listed; files are then looked up in its listing, so a symlink
anywhere on the way is seen and not followed, and a file's d_ino comes without a stat.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import xxhash

from .bytecode import is_pyc_suffix
from .store import TMP_PREFIX
from .tree import At, FolderSwapped, Tree

__all__ = ["Listing", "Listings", "Pyc", "Stamps", "dirent_kind", "entry_sum", "listing_sum"]


@dataclass(frozen=True, slots=True)
class Pyc:
    """A .pyc in the __pycache__ beside its source; nothing about it is read yet."""

    at: At
    ino: int  # d_ino from the listing
    suffix: str  # cache tag and optimisation level, e.g. "cpython-311.opt-1"

    @property
    def path(self) -> str:
        return self.at.path

    @property
    def cache_tag(self) -> str:
        """The interpreter it was written for: 'cpython-311' of 'cpython-311.opt-1'."""
        return self.suffix.partition(".")[0]


class Stamps(Protocol):
    """Told of every folder and RECORD before it is looked at, and of each folder's
    listing_sum once it is listed (dedupe.memo.Trace)."""

    def stamp(self, rel: str, may_be_absent: bool = False) -> None: ...

    def listed(self, rel: str, digest: int) -> None: ...


# A folder's listing in one number, so that a scan can tell later in the same run whether
# a folder holds what it held when listed, but for the changes the scan made itself: the
# sum (mod 2**64) of a keyed hash of each entry. A sum, so that replacing one entry's
# inode changes it by a difference the scan can compute. The key is drawn once per
# process, before any worker forks: nobody can make names whose hashes cancel out.
_SUM_KEY = secrets.randbits(64)
_MASK = (1 << 64) - 1


def entry_sum(rel: str, kind: str, ino: int) -> int:
    """The hash of one entry: venv-relative path, kind ('f', 'd', 'l', 'o') and d_ino."""
    entry = f"{rel}\0{kind}\0{ino}".encode("utf-8", "surrogateescape")
    return xxhash.xxh3_64_intdigest(entry, _SUM_KEY)


def listing_sum(folder: str, entries: Iterable[tuple[str, str, int]]) -> int:
    """The sum, mod 2**64, of entry_sum over the (name, kind, d_ino) entries of the
    venv-relative folder ('' for the venv root)."""
    prefix = f"{folder}/" if folder else ""
    return sum(entry_sum(prefix + name, kind, ino) for name, kind, ino in entries) & _MASK


def dirent_kind(e: os.DirEntry[str]) -> str:
    """A listed entry's kind, from its d_type: 'f', 'd', 'l' or 'o'."""
    if e.is_file(follow_symlinks=False):
        return "f"
    if e.is_dir(follow_symlinks=False):
        return "d"
    return "l" if e.is_symlink() else "o"


_NOT_FOLDER = {"l": "l"}  # what folder() says of a name that is not a folder: else 'missing'

# name -> d_ino, kind and whether a RECORD line claimed it, in one int (entry()): a
# listing is held for every folder of the venv while it is walked, and a tuple per name
# would double what it costs.
Listing = dict[str, int]
_KINDS = "fdlo"  # regular file, folder, symlink, other
_CLAIMED = 4  # the bit between kind and d_ino: claim() found the entry claimed


def entry(ino: int, kind: str) -> int:
    return ino << 3 | _KINDS.index(kind)


def kind_of(value: int) -> str:
    """The kind of a listing's entry: 'f', 'd', 'l' or 'o'."""
    return _KINDS[value & 3]


def ino_of(value: int) -> int:
    return value >> 3


class Listings:
    """Directory listings of one venv, made on demand, and each folder resolved once.

    A folder is usable when every component from the venv root down is a real folder
    (not a symlink) that could be listed; files are then looked up in its listing.
    """

    def __init__(self, tree: Tree, trace: Stamps | None = None) -> None:
        self.tree = tree
        self.trace = trace
        # rel folder -> its listing, or why it cannot be used ('l', 'missing', 'unreadable')
        self._folders: dict[str, Listing | str] = {}
        # The pycs of the last source folder asked about, by module stem: RECORD lists a
        # folder's files together, and an index of every folder would hold every pyc of
        # the venv at once (another folder's is made again from its listing).
        self._pycache: tuple[str, dict[str, tuple[Pyc, ...]] | None] | None = None
        self.leftovers: list[At] = []
        self._claimed: set[str] = set()  # claimed paths that no listing held when claimed

    def _list(self, rel: str) -> Listing | str:
        """The listing, or 'l' for a folder swapped for a symlink (or another folder)
        since its parent was listed, or 'unreadable'."""
        if self.trace is not None:
            self.trace.stamp(rel)  # before the listing: a change after it moves the stamp
        listing: Listing = {}
        prefix = f"{rel}/" if rel else ""
        try:
            for e in self.tree.scandir(rel):
                kind = dirent_kind(e)
                if kind == "f" and e.name.startswith(TMP_PREFIX):
                    self.leftovers.append(At(self.tree, prefix + e.name))
                listing[e.name] = entry(e.inode(), kind)
        except FolderSwapped:
            return "l"
        except OSError:
            return "unreadable"
        if self.trace is not None:
            entries = ((name, kind_of(v), ino_of(v)) for name, v in listing.items())
            self.trace.listed(rel, listing_sum(rel, entries))
        return listing

    def folder(self, rel: str) -> Listing | str:
        """The listing of a venv-relative folder ('' is the root), or 'l', 'missing' or
        'unreadable' when it, or a folder on the way, is a symlink, absent or unlistable."""
        found = self._folders.get(rel)
        if found is not None:
            return found
        if rel:
            parent_rel, _, name = rel.rpartition(os.sep)
            parent = self.folder(parent_rel)
            if isinstance(parent, str):
                result: Listing | str = parent
            else:
                found_kind = kind_of(parent[name]) if name in parent else "missing"
                result = (
                    self._list(rel) if found_kind == "d" else _NOT_FOLDER.get(found_kind, "missing")
                )
        else:
            result = self._list("")
        self._folders[rel] = result
        return result

    def lookup(self, folder: str, name: str) -> tuple[str, int]:
        """(kind, d_ino) of a name in a venv-relative folder; kind 'f', 'l', 'd', 'o',
        'missing' or 'unreadable'. A symlinked folder on the way makes the path 'l'."""
        listing = self.folder(folder)
        if isinstance(listing, str):
            return listing, 0
        value = listing.get(name)
        if value is None:
            return "missing", 0
        return kind_of(value), ino_of(value)

    def claim(self, rel: str) -> bool:
        """Claim the venv-relative path rel for a RECORD line: False when a line claimed
        it before. A claim is a bit of the name's entry where its folder is listed
        already (a set of every recorded path would hold a string per file of the venv),
        else rel in a set; a path is claimed when either says so."""
        if rel in self._claimed:
            return False
        folder, _, name = rel.rpartition(os.sep)
        listing = self._folders.get(folder)
        if not isinstance(listing, dict) or name not in listing:
            self._claimed.add(rel)
            return True
        value = listing[name]
        if value & _CLAIMED:
            return False
        listing[name] = value | _CLAIMED
        return True

    def subfolders(self, rel: str) -> list[str]:
        """The names of the real folders in the folder rel (none when it is unusable)."""
        listing = self.folder(rel)
        if isinstance(listing, str):
            return []
        return [name for name, value in listing.items() if kind_of(value) == "d"]

    def pycs(self, folder: str, name: str) -> tuple[Pyc, ...] | None:
        """The regular-file pycs of the source folder/name, from its __pycache__; None
        when that __pycache__ cannot be listed (its pycs could go stale unseen)."""
        if not name.endswith(".py"):
            return ()
        if self._pycache is None or self._pycache[0] != folder:
            self._pycache = (folder, self._index_pycache(folder))
        by_stem = self._pycache[1]
        if by_stem is None:
            return None
        return by_stem.get(name[:-3], ())

    def _index_pycache(self, folder: str) -> dict[str, tuple[Pyc, ...]] | None:
        # Indexed by module stem: a package folder can hold hundreds of modules, each with
        # several pycs.
        pycache = os.path.join(folder, "__pycache__") if folder else "__pycache__"
        parent = self.folder(folder)
        if isinstance(parent, str) or kind_of(parent.get("__pycache__", entry(0, "o"))) != "d":
            return {}
        listing = self.folder(pycache)
        if isinstance(listing, str):
            return None
        found: dict[str, list[Pyc]] = {}
        for pyc_name, value in listing.items():
            if kind_of(value) == "f" and pyc_name.endswith(".pyc"):
                ino = ino_of(value)
                stem, _, rest = pyc_name.partition(".")
                suffix = rest[:-4]  # 'mod.cpython-311.opt-1.pyc' -> 'cpython-311.opt-1'
                if is_pyc_suffix(suffix):
                    pyc = Pyc(At(self.tree, f"{pycache}/{pyc_name}"), ino, suffix)
                    found.setdefault(stem, []).append(pyc)
        return {stem: tuple(sorted(pycs, key=lambda p: p.at.rel)) for stem, pycs in found.items()}
