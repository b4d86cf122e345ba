"""Deciding, for each worthwhile candidate, whether to adopt it as an object, link it
to one, or refuse, after its bytes are proven."""

from __future__ import annotations

import os

from .. import cow
from ..decisions import Adopt, AlreadyShared, Decision, Link, Refused, SourceObject, Unique
from ..hashing import FileChanged
from ..inventory import Candidate
from ..reasons import Reason
from ..store import ObjectKey, Store
from ..tree import At, FolderSwapped
from .model import StoreObject
from .pycs import PycPlanner


class Planner(PycPlanner):
    def decide(self, candidate: Candidate, ckey: bytes) -> Decision:
        if not self._census.worth(ckey):
            return Unique()
        st = candidate.st
        store = self._stores[st.st_dev]
        obj = self._object(store, candidate.key)
        if st.st_dev in self._cow:
            return self._decide_cow(candidate, store, obj)
        if obj is not None and obj.ino == st.st_ino:
            return AlreadyShared(candidate.path)
        if obj is not None and obj.damaged:
            return Refused(candidate.path, Reason.STORE_OBJECT_DAMAGED)
        refused = self._proven(candidate, obj)
        if refused is not None:
            return refused
        differ = self._xattrs_differ(candidate.at, obj)
        if differ is not None:
            return differ
        if obj is None or obj.nlink >= self._max_links(store):
            new = StoreObject(
                store.path,
                candidate.key,
                0 if obj is None else obj.generation + 1,
                st.st_ino,
                self._adopted(st),
                proven=True,
                mtime_ns=st.st_mtime_ns,
                xattrs=self._facts.xattrs(candidate.at),
            )
            self._known(st.st_dev)[candidate.key] = new
            path = self._name(new)
            self._note_folders(store, path)
            return Adopt(candidate.at, st, path)
        if candidate.pycs and not self._writable(candidate.pycs[0].at):
            # Linking changes the source's mtime; pycs we may not replace would go stale
            # and be recompiled on every import.
            return Refused(candidate.path, Reason.PYCACHE_READ_ONLY)
        self._gains_name(obj, st.st_dev)
        return Link(candidate.at, st, self._name(obj), obj.ino, self._last_name(st))

    def _decide_cow(self, candidate: Candidate, store: Store, obj: StoreObject | None) -> Decision:
        """decide() where the store shares data blocks, not inodes: the candidate keeps
        its inode, owner, mode and times, so none of them splits a group, and its pycs
        stay valid as they are."""
        st = candidate.st
        if (st.st_dev, st.st_ino) in self._cow_shared:
            return AlreadyShared(candidate.path)  # another name of an inode shared here
        if obj is not None and obj.damaged:
            return Refused(candidate.path, Reason.STORE_OBJECT_DAMAGED)
        try:
            mine = self._facts.extents(candidate.at)
        except (FileChanged, FolderSwapped):
            return Refused(candidate.path, Reason.CHANGED_DURING_SCAN)
        except OSError as exc:
            return Refused(candidate.path, Reason.UNREADABLE, f"cannot read: {exc.strerror or exc}")
        if cow.inline(mine):
            return Refused(candidate.path, Reason.INLINE_DATA)
        if obj is not None and cow.same_blocks(mine, self._object_extents(obj)):
            return AlreadyShared(candidate.path)  # no read: the blocks are the object's
        refused = self._proven(candidate, obj)
        if refused is not None:
            return refused
        self._cow_note(st)
        if obj is None:
            # The store's own copy, cloned from the candidate: its data stays the
            # candidate's blocks, so adopting frees nothing and costs nothing.
            new = StoreObject(store.path, candidate.key, 0, -1, 1, proven=True)
            self._known(st.st_dev)[candidate.key] = new
            path = self._name(new)
            self._note_folders(store, path)
            return Adopt(candidate.at, st, path, candidate.key)
        return Link(candidate.at, st, self._name(obj), obj.ino, not cow.any_shared(mine))

    def undo(self, decision: Decision, candidate: Candidate) -> None:
        """The executor could not carry the decision out: forget what it assumed."""
        known = self._known(candidate.st.st_dev)
        st = decision.st if isinstance(decision, (Adopt, Link)) else candidate.st
        self._cow_shared.discard((st.st_dev, st.st_ino))
        if isinstance(decision, Adopt):
            known.pop(candidate.key, None)  # the next use reloads what the store has
            self._named = None
            ident = (st.st_dev, st.st_ino)
            if ident in self._remaining_links:
                self._remaining_links[ident] -= 1  # the store's name it did not get
        elif isinstance(decision, Link):
            obj = known.get(candidate.key)
            if obj is not None:
                obj.nlink -= 1
                if (st.st_dev, obj.ino) in self._remaining_links:
                    self._remaining_links[st.st_dev, obj.ino] -= 1
            if st.st_nlink > 1:
                ident = (st.st_dev, st.st_ino)
                self._remaining_links[ident] = self._remaining_links.get(ident, 0) + 1

    def _proven(self, candidate: Candidate, obj: StoreObject | None) -> Refused | None:
        """Why the candidate may not share obj (its object, or None: it becomes one):
        its bytes are not its RECORD's, or the object's are not its name's."""
        refused = self._prove(candidate.at, candidate.key, candidate.st)
        if refused is not None:
            return refused
        if obj is not None and not (obj.proven and self._unchanged(obj)):
            obj.damaged = self._check_object(obj, candidate.key, candidate.st)
            obj.proven = True
            if obj.damaged:
                return Refused(candidate.path, Reason.STORE_OBJECT_DAMAGED, obj.damaged)
        return None

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

    def source_object(self, candidate: Candidate) -> SourceObject | None:
        """After an Adopt or Link of candidate: the object its name now points at (or, by
        copy-on-write, shares its data with: the candidate keeps its own mtime)."""
        st = candidate.st
        obj = self._known(st.st_dev).get(candidate.key)
        if obj is None:
            return None
        mtime_ns = st.st_mtime_ns if st.st_dev in self._cow else obj.mtime_ns
        return SourceObject(candidate.key, obj.generation, mtime_ns, st.st_size)

    def object_full(self, candidate: Candidate) -> None:
        """The object hit EMLINK although the planner expected room: start a new one next."""
        obj = self._known(candidate.st.st_dev).get(candidate.key)
        if obj is not None:
            obj.nlink = 1 << 62
