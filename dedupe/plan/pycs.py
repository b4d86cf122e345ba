"""Deciding what becomes of each pyc of a source the planner linked or adopted: shared
within its interpreter build's group, kept private with its header renewed, or left."""

from __future__ import annotations

import os
import stat

from .. import bytecode, cow
from ..decisions import (
    Adopt,
    AlreadyShared,
    ClonePyc,
    CreatePyc,
    Decision,
    Link,
    Refused,
    RewritePyc,
    SourceObject,
)
from ..hashing import FileChanged
from ..interpreter import Build
from ..listing import Pyc
from ..reasons import Reason
from ..store import PycKey, Store
from ..tree import FolderSwapped
from .model import StoreModel, StoreObject


class PycPlanner(StoreModel):
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
            cow = source.key.cow
            key = PycKey(
                source=source.key,
                source_generation=source.generation,
                suffix=pyc.suffix,
                magic=header.magic,
                flags=header.flags,
                build=build.ident,
                uid=0 if cow else pst.st_uid,
                gid=0 if cow else pst.st_gid,
                mode=0 if cow else stat.S_IMODE(pst.st_mode),
            )
            if cow:
                return self._share_pyc_data(store, key, source, pyc, (header_bytes, pst))
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
            new = StoreObject(
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
        new = StoreObject(0, path, -1, 2, True, xattrs=self._facts.xattrs(pyc.at))
        self._pyc_objects[store.device, key] = self._by_path[path] = new
        data = bytecode.with_source_stat(data, source.mtime_ns, source.size)
        return [
            CreatePyc(path, data, pyc.at, pst),
            Link(pyc.at, pst, path, -1, self._last_name(pst)),
        ]

    def _share_pyc_data(
        self,
        store: Store,
        key: PycKey,
        source: SourceObject,
        pyc: Pyc,
        read: tuple[bytes, os.stat_result],
    ) -> list[Decision]:
        """Copy-on-write: the venv's pyc becomes the group's object with its own header.

        The pycs of one group differ in their header (each venv's source keeps its own
        mtime) and in the source path compiled into them, which the import system
        replaces on load. So the first becomes the group's object (a clone of its data),
        and each other one is replaced by a clone of the object whose first 16 bytes are
        its own header: all its blocks but the first, which holds the header, are shared.
        """
        header, pst = read
        obj = self._pyc_object(store, key, source)
        if obj is not None and obj.damaged:
            return []  # kept as it is: valid, and private
        if pst.st_size <= pst.st_blksize:
            return [Refused(pyc.path, Reason.PYC_ONE_BLOCK)]
        if obj is None:
            path = store.pyc_path(key, 0)
            self._note_folders(store, path)
            new = StoreObject(0, path, -1, 1, True)
            self._pyc_objects[store.device, key] = self._by_path[path] = new
            return [Adopt(pyc.at, pst, path)]
        try:
            mine = self._facts.extents(pyc.at)
        except (OSError, FileChanged):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        if cow.same_blocks(mine, self._object_extents(obj), pst.st_blksize):
            return [AlreadyShared(pyc.path)]
        if pst.st_nlink > 1 or cow.any_shared(mine):
            return []  # its blocks are not its own alone: replacing it would free nothing
        return [ClonePyc(pyc.at, pst, obj.path, header)]

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
