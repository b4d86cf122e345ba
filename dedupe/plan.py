"""Deciding, file by file, what to link where, and what that reclaims.

Pass 1 (Census) counts how many distinct inodes hold each content from RECORD and stat
alone, so no file whose content occurs once is ever read. Pass 2 (Planner) proves each
worthwhile candidate's bytes and returns an action; it never changes the filesystem.
The planner keeps its own model of the store (objects made, link counts), so a dry run
and a real run take the same decisions and report the same figures.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

import xxhash

from .hashing import FileChanged, digest_file
from .inventory import CHANGED_DURING_SCAN, CHANGED_SINCE_INSTALL, UNREADABLE, Candidate
from .store import ObjectKey, Store, StoreIndex

STORE_OBJECT_DAMAGED = "store-object-damaged"


def census_key(device: int, key: ObjectKey) -> bytes:
    # A 128-bit xxhash of the group identity keeps the census at a few dozen bytes per
    # distinct file. A collision could only merge two groups' counts and cost a read:
    # every link is still proven by the recorded digest (DESIGN.md invariant 2).
    return xxhash.xxh3_128_digest(
        key.algorithm.encode()
        + key.digest
        + struct.pack("<QQQQ", device, key.uid, key.gid, key.mode)
    )


class Census:
    """Pass 1: distinct inodes per content group, plus whether the store already has it."""

    def __init__(self, indexes: dict[int, StoreIndex]) -> None:
        self._indexes = indexes
        self._counts: dict[bytes, int] = {}
        self._multi_link: set[tuple[int, int]] = set()

    def add(self, candidate: Candidate) -> bytes:
        st = candidate.st
        ckey = census_key(st.st_dev, candidate.key)
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in self._multi_link:
                return ckey  # another name of an inode already counted
            self._multi_link.add((st.st_dev, st.st_ino))
        count = self._counts.get(ckey)
        if count is None:
            index = self._indexes.get(st.st_dev)
            count = 1 if index is not None and candidate.key in index.objects else 0
        self._counts[ckey] = count + 1
        return ckey

    def worth(self, ckey: bytes) -> bool:
        """Linking can reclaim space: two distinct inodes, or one and a store object."""
        return self._counts.get(ckey, 0) >= 2

    def worthwhile_prefixes(self) -> set[int]:
        return {int.from_bytes(k[:8], "little") for k, n in self._counts.items() if n >= 2}


@dataclass(frozen=True, slots=True)
class Adopt:
    """Make the candidate's own inode the store object (a new link; frees nothing)."""

    path: str
    st: os.stat_result
    object_path: str


@dataclass(frozen=True, slots=True)
class Link:
    """Replace the candidate by a link to the object; frees its inode if this was its last name."""

    path: str
    st: os.stat_result
    object_path: str
    object_ino: int
    frees: bool


@dataclass(frozen=True, slots=True)
class Unique:
    """No other copy to share with: left as it is, never read."""


@dataclass(frozen=True, slots=True)
class AlreadyShared:
    path: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The candidate's bytes could not be proven, or its object is unusable."""

    path: str
    reason: str
    error: str | None = None  # set when this is an error, not an ordinary skip


Decision = Adopt | Link | Unique | AlreadyShared | Refused


@dataclass(slots=True)
class _Object:
    generation: int
    path: str
    ino: int
    nlink: int
    proven: bool  # bytes checked against the name in this run
    damaged: str | None = None


class Planner:
    def __init__(self, census: Census, stores: dict[int, Store], indexes: dict[int, StoreIndex]):
        self._census = census
        self._stores = stores
        self._indexes = indexes
        self._objects: dict[ObjectKey, _Object | None] = {}
        self._remaining_links: dict[tuple[int, int], int] = {}
        self._link_max: dict[int, int] = {}
        self.new_folders: set[str] = set()  # store folders that adopting creates

    def decide(self, candidate: Candidate, ckey: bytes) -> Decision:
        if not self._census.worth(ckey):
            return Unique()
        st = candidate.st
        store = self._stores[st.st_dev]
        obj = self._object(store, candidate.key)
        if obj is not None and obj.ino == st.st_ino:
            return AlreadyShared(candidate.path)
        if obj is not None and obj.damaged:
            return Refused(candidate.path, STORE_OBJECT_DAMAGED)
        refused = self._prove(candidate.path, candidate.key, st)
        if refused is not None:
            return refused
        if obj is not None and not obj.proven:
            obj.damaged = self._check_object(obj, candidate.key, st)
            obj.proven = True
            if obj.damaged:
                return Refused(candidate.path, STORE_OBJECT_DAMAGED, obj.damaged)
        if obj is None or obj.nlink >= self._max_links(store):
            generation = 0 if obj is None else obj.generation + 1
            new = _Object(
                generation,
                store.object_path(candidate.key, generation),
                st.st_ino,
                st.st_nlink + 1,
                proven=True,
            )
            self._objects[candidate.key] = new
            self._note_folders(store, new.path)
            return Adopt(candidate.path, st, new.path)
        obj.nlink += 1
        return Link(candidate.path, st, obj.path, obj.ino, self._last_name(st))

    def undo(self, decision: Decision, key: ObjectKey) -> None:
        """The executor could not carry the decision out: forget what it assumed."""
        if isinstance(decision, Adopt):
            self._objects.pop(key, None)  # the next use reloads what the store really has
        elif isinstance(decision, Link):
            obj = self._objects.get(key)
            if obj is not None:
                obj.nlink -= 1
            st = decision.st
            if st.st_nlink > 1:
                ident = (st.st_dev, st.st_ino)
                self._remaining_links[ident] = self._remaining_links.get(ident, 0) + 1

    def _note_folders(self, store: Store, object_path: str) -> None:
        shard = os.path.dirname(object_path)
        for folder in (os.path.dirname(shard), shard):
            if folder not in self.new_folders and not os.path.isdir(folder):
                self.new_folders.add(folder)

    def _last_name(self, st: os.stat_result) -> bool:
        """Whether replacing this name frees the inode (blocks count only when it does)."""
        if st.st_nlink == 1:
            return True
        ident = (st.st_dev, st.st_ino)
        left = self._remaining_links.get(ident, st.st_nlink) - 1
        self._remaining_links[ident] = left
        return left == 0

    def _prove(self, path: str, key: ObjectKey, st: os.stat_result) -> Refused | None:
        try:
            digest = digest_file(path, key.algorithm, expected=st)
        except FileChanged:
            return Refused(path, CHANGED_DURING_SCAN)
        except OSError as exc:
            return Refused(path, UNREADABLE, f"cannot read: {exc.strerror or exc}")
        if digest != key.digest:
            return Refused(path, CHANGED_SINCE_INSTALL)
        return None

    def _object(self, store: Store, key: ObjectKey) -> _Object | None:
        try:
            return self._objects[key]
        except KeyError:
            pass
        obj = None
        generations = self._indexes[store.device].objects.get(key)
        if generations:
            generation, _ = generations[-1]
            path = store.object_path(key, generation)
            try:
                ost = os.lstat(path)
            except OSError:
                ost = None
            if ost is not None and stat.S_ISREG(ost.st_mode):
                obj = _Object(generation, path, ost.st_ino, ost.st_nlink, proven=False)
        self._objects[key] = obj
        return obj

    def _check_object(self, obj: _Object, key: ObjectKey, st: os.stat_result) -> str | None:
        """Why the store object must not be linked to, or None when its bytes and metadata
        are what its name says. Someone may have written or chmod'ed a venv file in place,
        which reaches the shared inode."""
        try:
            ost = os.lstat(obj.path)
            if (ost.st_uid, ost.st_gid, stat.S_IMODE(ost.st_mode)) != (key.uid, key.gid, key.mode):
                return f"store object {obj.path!r} no longer has the owner or mode its name says"
            if ost.st_size != st.st_size or digest_file(obj.path, key.algorithm) != key.digest:
                return (
                    f"store object {obj.path!r} does not match its name: a file linked to it "
                    "was edited in place"
                )
        except (OSError, FileChanged) as exc:
            return f"cannot check store object {obj.path!r}: {exc}"
        obj.ino, obj.nlink = ost.st_ino, ost.st_nlink
        return None

    def _max_links(self, store: Store) -> int:
        if store.device not in self._link_max:
            try:
                self._link_max[store.device] = os.pathconf(store.path, "PC_LINK_MAX")
            except (OSError, ValueError):
                self._link_max[store.device] = 65000  # ext4's limit, the most common
        return self._link_max[store.device]

    def object_full(self, key: ObjectKey) -> None:
        """The object hit EMLINK although the planner expected room: start a new one next."""
        obj = self._objects.get(key)
        if obj is not None:
            obj.nlink = 1 << 62
