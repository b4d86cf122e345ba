"""Deciding, file by file, what to link where, and what that reclaims.

Pass 2's Planner takes each worthwhile candidate (dedupe.census), has its bytes proven,
and returns an action; it never changes the filesystem, and it learns about files only
through the Facts it is given (dedupe.proof.Disk in a scan, made-up facts in tests). It
keeps its own model of the store (objects made, link counts), so a dry run and a real
run take the same decisions and report the same figures.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from . import bytecode
from .census import Census
from .decisions import (
    Adopt,
    AlreadyShared,
    CreatePyc,
    Decision,
    Link,
    Observed,
    Refused,
    RewritePyc,
    SourceObject,
    Unique,
)
from .hashing import (
    FileChanged,
    fingerprint,
    same_content_fingerprint,
)
from .interpreter import Build
from .inventory import Candidate, Pyc
from .proof import Facts
from .reasons import Reason
from .store import ObjectKey, PycKey, Store, StoreIndex
from .tree import At, FolderSwapped


@dataclass(slots=True)
class _Object:
    generation: int
    path: str
    ino: int
    nlink: int
    proven: bool  # bytes checked against the name in this run
    damaged: str | None = None
    mtime_ns: int = 0
    # The object's stat (its fingerprint) when it was last known good (proven, or just
    # after our own link changed its ctime). Anything else that touches the inode moves
    # ctime: a write through some venv's name during the run, a chmod, even a write that
    # restores mtime.
    seen: bytes | None = None
    source: SourceObject | None = None  # pyc objects: the source they are valid for
    xattrs: tuple[tuple[str, bytes], ...] | None = None


class Planner:
    def __init__(
        self,
        census: Census,
        stores: dict[int, Store],
        indexes: dict[int, StoreIndex],
        facts: Facts,
    ) -> None:
        self._census = census
        self._facts = facts
        self._stores = stores
        self._indexes = indexes
        # By device and key: the same content and owner on two filesystems is two objects.
        self._objects: dict[tuple[int, ObjectKey], _Object | None] = {}
        self._remaining_links: dict[tuple[int, int], int] = {}
        self._link_max: dict[int, int] = {}
        self.new_folders: set[str] = set()  # store folders that adopting creates
        self._pyc_objects: dict[tuple[int, PycKey], _Object | None] = {}
        self._by_path: dict[str, _Object] = {}  # every object this run knows, by path
        self._old_folders: set[str] = set()  # store folders that were there already
        # The last __pycache__ asked about: a RECORD lists a folder's files together, and
        # a cache of every folder would hold a path per folder of every venv.
        self._pycache_writable: tuple[At | None, bool] = (None, False)

    def decide(self, candidate: Candidate, ckey: bytes) -> Decision:
        if not self._census.worth(ckey):
            return Unique()
        st = candidate.st
        store = self._stores[st.st_dev]
        obj = self._object(store, candidate.key)
        if obj is not None and obj.ino == st.st_ino:
            return AlreadyShared(candidate.path)
        if obj is not None and obj.damaged:
            return Refused(candidate.path, Reason.STORE_OBJECT_DAMAGED)
        refused = self._prove(candidate.at, candidate.key, st)
        if refused is not None:
            return refused
        if obj is not None and not (obj.proven and self._unchanged(obj)):
            obj.damaged = self._check_object(obj, candidate.key, st)
            obj.proven = True
            if obj.damaged:
                return Refused(candidate.path, Reason.STORE_OBJECT_DAMAGED, obj.damaged)
        differ = self._xattrs_differ(candidate.at, obj)
        if differ is not None:
            return differ
        if obj is None or obj.nlink >= self._max_links(store):
            generation = 0 if obj is None else obj.generation + 1
            new = _Object(
                generation,
                store.object_path(candidate.key, generation),
                st.st_ino,
                self._adopted(st),
                proven=True,
                mtime_ns=st.st_mtime_ns,
                xattrs=self._facts.xattrs(candidate.at),
            )
            self._objects[st.st_dev, candidate.key] = new
            self._by_path[new.path] = new
            self._note_folders(store, new.path)
            return Adopt(candidate.at, st, new.path)
        if candidate.pycs and not self._writable(candidate.pycs[0].at):
            # Linking changes the source's mtime; pycs we may not replace would go stale
            # and be recompiled on every import.
            return Refused(candidate.path, Reason.PYCACHE_READ_ONLY)
        self._gains_name(obj, st.st_dev)
        return Link(candidate.at, st, obj.path, obj.ino, self._last_name(st))

    def undo(self, decision: Decision, candidate: Candidate) -> None:
        """The executor could not carry the decision out: forget what it assumed."""
        key = (candidate.st.st_dev, candidate.key)
        st = decision.st if isinstance(decision, (Adopt, Link)) else candidate.st
        if isinstance(decision, Adopt):
            obj = self._objects.pop(key, None)  # the next use reloads what the store has
            if obj is not None:
                self._by_path.pop(obj.path, None)
            ident = (st.st_dev, st.st_ino)
            if ident in self._remaining_links:
                self._remaining_links[ident] -= 1  # the store's name it did not get
        elif isinstance(decision, Link):
            obj = self._objects.get(key)
            if obj is not None:
                obj.nlink -= 1
                if (st.st_dev, obj.ino) in self._remaining_links:
                    self._remaining_links[st.st_dev, obj.ino] -= 1
            if st.st_nlink > 1:
                ident = (st.st_dev, st.st_ino)
                self._remaining_links[ident] = self._remaining_links.get(ident, 0) + 1

    def observe(self, object_path: str, observed: Observed | None) -> None:
        """What the executor left the object as (None: it changed nothing, a dry run):
        the new known-good state, taken before anyone else could touch it."""
        obj = self._by_path.get(object_path)
        if obj is None or observed is None:
            return
        now = observed.fingerprint
        if now is None:
            obj.seen, obj.proven = None, False
            return
        if observed.new_ino is not None:
            obj.ino = observed.new_ino
        # Our link moved only ctime and the link count. If anything a write or chmod
        # moves differs from the proven state, someone else touched the inode since.
        if obj.seen is not None and not same_content_fingerprint(now, obj.seen):
            obj.proven = False
        obj.seen = now

    def _unchanged(self, obj: _Object) -> bool:
        if obj.seen is None:
            return True  # planned in this run (a dry run), or just adopted: nothing to compare
        try:
            return fingerprint(self._facts.stat(obj.path)) == obj.seen
        except OSError:
            return False

    def _xattrs_differ(self, at: At, obj: _Object | None) -> Refused | None:
        """Extended attributes (POSIX ACLs, SELinux labels) live on the inode like the
        mode: a file may only share an inode whose attributes are the same."""
        if obj is None:
            return None
        if obj.xattrs is None:
            obj.xattrs = self._facts.xattrs(obj.path)
        if self._facts.xattrs(at) != obj.xattrs:
            return Refused(at.path, Reason.XATTRS_DIFFER)
        return None

    def _writable(self, pyc: At) -> bool:
        """Whether the __pycache__ holding pyc may be written."""
        folder = pyc.parent()
        last, writable = self._pycache_writable
        if folder != last:
            writable = self._facts.writable(folder)
            self._pycache_writable = (folder, writable)
        return writable

    def _note_folders(self, store: Store, object_path: str) -> None:
        folder = os.path.dirname(object_path)
        while folder != store.path and folder not in self.new_folders:
            if folder in self._old_folders or self._facts.is_folder(folder):
                self._old_folders.add(folder)
                break
            self.new_folders.add(folder)
            folder = os.path.dirname(folder)

    def _names(self, st: os.stat_result) -> int:
        """How many names the inode has now: its link count less the names this run
        moved to other inodes (a dry run's stat still counts them)."""
        return self._remaining_links.get((st.st_dev, st.st_ino), st.st_nlink)

    def _adopted(self, st: os.stat_result) -> int:
        """The link count of an inode about to become an object: its names and the
        store's. Kept for an inode with other names, which may still come as candidates:
        in a dry run their stat does not count the store's name."""
        names = self._names(st) + 1
        if names > 2:
            self._remaining_links[st.st_dev, st.st_ino] = names
        return names

    def _gains_name(self, obj: _Object, device: int) -> None:
        obj.nlink += 1
        ident = (device, obj.ino)
        if ident in self._remaining_links:
            self._remaining_links[ident] += 1

    def _last_name(self, st: os.stat_result) -> bool:
        """Whether replacing this name frees the inode (blocks count only when it does)."""
        if st.st_nlink == 1:
            return True
        ident = (st.st_dev, st.st_ino)
        left = self._names(st) - 1
        self._remaining_links[ident] = left
        return left == 0

    def _prove(self, at: At, key: ObjectKey, st: os.stat_result) -> Refused | None:
        path = at.path
        try:
            digest = self._facts.digest(at, key.algorithm, expected=st, hoped=key.digest)
        except (FileChanged, FolderSwapped):
            return Refused(path, Reason.CHANGED_DURING_SCAN)
        except OSError as exc:
            return Refused(path, Reason.UNREADABLE, f"cannot read: {exc.strerror or exc}")
        if digest != key.digest:
            return Refused(path, Reason.CHANGED_SINCE_INSTALL)
        return None

    def _object(self, store: Store, key: ObjectKey) -> _Object | None:
        try:
            return self._objects[store.device, key]
        except KeyError:
            pass
        obj = None
        generations = self._indexes[store.device].objects.get(key)
        if generations:
            generation, _ = generations[-1]
            path = store.object_path(key, generation)
            try:
                ost = self._facts.stat(path)
            except OSError:
                ost = None
            if ost is not None and stat.S_ISREG(ost.st_mode):
                obj = _Object(
                    generation, path, ost.st_ino, ost.st_nlink, False, mtime_ns=ost.st_mtime_ns
                )
                self._by_path[path] = obj
        self._objects[store.device, key] = obj
        return obj

    def indexed_source(self, store: Store, ino: int) -> tuple[ObjectKey, int] | None:
        return self._indexes[store.device].sources_by_inode.get(ino)

    def source_object(self, candidate: Candidate) -> SourceObject | None:
        """After an Adopt or Link of candidate: the object its name now points at."""
        obj = self._objects.get((candidate.st.st_dev, candidate.key))
        if obj is None:
            return None
        return SourceObject(candidate.key, obj.generation, obj.mtime_ns, candidate.st.st_size)

    def decide_pyc(
        self,
        store: Store,
        source: SourceObject,
        before: tuple[int, int],
        pyc: Pyc,
        build: Build | None,
    ) -> list[Decision]:
        """What to do with one pyc of a source that now is (or already was) `source`.

        `before` is the source's (mtime_ns, size) before this run linked it: a pyc valid
        for that stays valid, by sharing the group's pyc object or, without sharing or
        when sharing is impossible, by a private copy whose header names the new mtime.
        build: the interpreter build that wrote the venv's pycs, None when they are not
        to be shared (--no-share-pyc, or a build that cannot be told).
        """
        try:
            header_bytes, pst = self._facts.header(pyc.at)
            header = bytecode.parse_header(header_bytes)
        except (FileChanged, FolderSwapped):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        except OSError as exc:
            return [Refused(pyc.path, Reason.PYC_UNREADABLE, f"cannot read: {exc.strerror or exc}")]
        except ValueError:
            return [Refused(pyc.path, Reason.PYC_UNRECOGNISED)]
        if header.hash_based:
            return [Refused(pyc.path, Reason.PYC_HASH_BASED)]
        if not bytecode.valid_for_stat(header, *before):
            return [Refused(pyc.path, Reason.PYC_STALE)]
        fits_object = bytecode.valid_for_stat(header, source.mtime_ns, source.size)
        if build is not None and build.writes(pyc.cache_tag):
            key = PycKey(
                source=source.key,
                source_generation=source.generation,
                suffix=pyc.suffix,
                magic=header.magic,
                flags=header.flags,
                build=build.ident,
                uid=pst.st_uid,
                gid=pst.st_gid,
                mode=stat.S_IMODE(pst.st_mode),
            )
            shared = self._share_pyc(store, key, source, pyc, pst, fits_object)
            if shared is not None:
                return shared
        if fits_object:
            return []  # valid as it is, kept private
        return self._rewrite(pyc, pst, source)

    def _rewrite(self, pyc: Pyc, pst: os.stat_result, source: SourceObject) -> list[Decision]:
        try:
            data = self._facts.whole(pyc.at, pst)
        except (FileChanged, FolderSwapped):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        except OSError as exc:
            return [Refused(pyc.path, Reason.PYC_UNREADABLE, f"cannot read: {exc.strerror or exc}")]
        return [
            RewritePyc(pyc.at, pst, bytecode.with_source_stat(data, source.mtime_ns, source.size))
        ]

    def _share_pyc(
        self,
        store: Store,
        key: PycKey,
        source: SourceObject,
        pyc: Pyc,
        pst: os.stat_result,
        fits_object: bool,
    ) -> list[Decision] | None:
        """Decisions that share the pyc, or None when it cannot be shared."""
        obj = self._pyc_object(store, key, source)
        if obj is not None and not obj.damaged and not self._unchanged(obj):
            obj.damaged = self._check_pyc_object(obj.path, key, source)
        if obj is not None and (obj.damaged or obj.nlink >= self._max_links(store)):
            return None  # kept private and valid instead
        if obj is not None:
            if obj.ino == pst.st_ino:
                return [AlreadyShared(pyc.path)]
            if self._xattrs_differ(pyc.at, obj) is not None:
                return None
            self._gains_name(obj, pst.st_dev)
            return [Link(pyc.at, pst, obj.path, obj.ino, self._last_name(pst))]
        path = store.pyc_path(key, 0)
        self._note_folders(store, path)
        if fits_object:
            new = _Object(
                0, path, pst.st_ino, self._adopted(pst), True, xattrs=self._facts.xattrs(pyc.at)
            )
            self._pyc_objects[store.device, key] = self._by_path[path] = new
            return [Adopt(pyc.at, pst, path)]
        try:
            data = self._facts.whole(pyc.at, pst)
        except (OSError, FileChanged):
            return None
        # A new inode: its number is only known once written, so later venvs of this run
        # compare against -1 and link to it by path.
        new = _Object(0, path, -1, 2, True, xattrs=self._facts.xattrs(pyc.at))
        self._pyc_objects[store.device, key] = self._by_path[path] = new
        data = bytecode.with_source_stat(data, source.mtime_ns, source.size)
        return [
            CreatePyc(path, data, pyc.at, pst),
            Link(pyc.at, pst, path, -1, self._last_name(pst)),
        ]

    def undo_pyc(self, object_path: str) -> None:
        """A pyc object could not be written or adopted: forget it."""
        obj = self._by_path.pop(object_path, None)
        for key in [k for k, o in self._pyc_objects.items() if o is obj]:
            del self._pyc_objects[key]

    def keep_private(
        self, source: SourceObject, before: tuple[int, int], pyc: Pyc
    ) -> list[Decision]:
        """The pyc could not be shared: keep it valid for the linked source on its own."""
        try:
            header_bytes, pst = self._facts.header(pyc.at)
            header = bytecode.parse_header(header_bytes)
        except (OSError, ValueError, FileChanged):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        if bytecode.valid_for_stat(header, source.mtime_ns, source.size):
            return []
        if not bytecode.valid_for_stat(header, *before):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        return self._rewrite(pyc, pst, source)

    def _check_pyc_object(self, path: str, key: PycKey, source: SourceObject) -> str | None:
        try:
            header_bytes, ost = self._facts.header(path)
            header = bytecode.parse_header(header_bytes)
        except (OSError, ValueError, FileChanged) as exc:
            return f"pyc object {path!r} cannot be read as a pyc: {exc}"
        if not bytecode.valid_for_stat(header, source.mtime_ns, source.size) or (
            header.magic,
            header.flags,
            ost.st_uid,
            ost.st_gid,
            stat.S_IMODE(ost.st_mode),
        ) != (key.magic, key.flags, key.uid, key.gid, key.mode):
            return f"pyc object {path!r} is not valid for its source object"
        return None

    def _pyc_object(self, store: Store, key: PycKey, source: SourceObject) -> _Object | None:
        try:
            return self._pyc_objects[store.device, key]
        except KeyError:
            pass
        obj = None
        generations = self._indexes[store.device].pycs.get(key)
        if generations:
            generation, _ = generations[-1]
            path = store.pyc_path(key, generation)
            try:
                ost = self._facts.stat(path)
            except OSError:
                ost = None
            if ost is not None:
                # An object that is there but unusable stays in the way of its name: the
                # group is then kept private (and valid), never linked to it.
                obj = _Object(
                    generation, path, ost.st_ino, ost.st_nlink, True, seen=fingerprint(ost)
                )
                obj.damaged = self._check_pyc_object(path, key, source)
                self._by_path[path] = obj
        self._pyc_objects[store.device, key] = obj
        return obj

    def _check_object(self, obj: _Object, key: ObjectKey, st: os.stat_result) -> str | None:
        """Why the store object must not be linked to, or None when its bytes and metadata
        are what its name says. Someone may have written or chmod'ed a venv file in place,
        which reaches the shared inode."""
        try:
            ost = self._facts.stat(obj.path)
            if (ost.st_uid, ost.st_gid, stat.S_IMODE(ost.st_mode)) != (key.uid, key.gid, key.mode):
                return f"store object {obj.path!r} no longer has the owner or mode its name says"
            if (
                ost.st_size != st.st_size
                or self._facts.digest(obj.path, key.algorithm) != key.digest
            ):
                return (
                    f"store object {obj.path!r} does not match its name: a file linked to it "
                    "was edited in place"
                )
        except (OSError, FileChanged) as exc:
            return f"cannot check store object {obj.path!r}: {exc}"
        obj.ino, obj.nlink, obj.seen = ost.st_ino, ost.st_nlink, fingerprint(ost)
        return None

    def _max_links(self, store: Store) -> int:
        if store.device not in self._link_max:
            self._link_max[store.device] = self._facts.link_max(store.path)
        return self._link_max[store.device]

    def object_full(self, candidate: Candidate) -> None:
        """The object hit EMLINK although the planner expected room: start a new one next."""
        obj = self._objects.get((candidate.st.st_dev, candidate.key))
        if obj is not None:
            obj.nlink = 1 << 62
