"""Deciding what becomes of each pyc of a source the planner linked or adopted: shared
within its interpreter build's group, kept private with its header renewed, or left."""

from __future__ import annotations

import hashlib
import os
import stat
import sys

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
from ..store import PycKey, Store, interned
from ..tree import At, FolderSwapped
from .model import StoreModel, StoreObject


class PycPlanner(StoreModel):
    def decide_pyc(
        self,
        store: Store,
        source: SourceObject,
        source_file: tuple[At, os.stat_result],
        pyc: Pyc,
        build: Build | None,
    ) -> list[Decision]:
        """What to do with one pyc of a source that now is (or already was) `source`.

        source_file: the venv's source file and its stat before this run linked it (which
        copy-on-write reads for its hash). A pyc valid for that stat stays valid, by
        sharing the group's pyc object or, without sharing or when sharing is impossible,
        by a private copy whose header names the new mtime. build: the interpreter build
        that wrote the venv's pycs, None when they are not to be shared (--no-share-pyc,
        or a build that cannot be told).
        """
        before = (source_file[1].st_mtime_ns, source_file[1].st_size)
        try:
            header_bytes, pst = self._facts.header(pyc.at)
            header = bytecode.parse_header(header_bytes)
        except (FileChanged, FolderSwapped):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        except OSError as exc:
            return [Refused(pyc.path, Reason.PYC_UNREADABLE, f"cannot read: {exc.strerror or exc}")]
        except ValueError:
            return [Refused(pyc.path, Reason.PYC_UNRECOGNISED)]
        shares = build if build is not None and build.writes(pyc.cache_tag) else None
        cpython = pyc.cache_tag.startswith("cpython-")  # the hash families are CPython's
        if shares is not None and source.key.cow and cpython and bytecode.can_hash(header.magic):
            key = _pyc_key(source, pyc, header.magic, bytecode.CHECKED_HASH_FLAGS, shares, None)
            read = (header, header_bytes, pst)
            return self._share_hashed(store, key, source, before, pyc, read, source_file)
        if header.hash_based:
            return [Refused(pyc.path, Reason.PYC_HASH_BASED)]
        if not bytecode.valid_for_stat(header, *before):
            return [Refused(pyc.path, Reason.PYC_STALE)]
        fits_object = bytecode.valid_for_stat(header, source.mtime_ns, source.size)
        if shares is not None and source.key.cow:
            key = _pyc_key(source, pyc, header.magic, header.flags, shares, None)
            return self._share_pyc_data(store, key, source, pyc, (header_bytes, pst))
        if shares is not None:
            key = _pyc_key(source, pyc, header.magic, header.flags, shares, pst)
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
            obj.damaged = self._check_pyc_object(obj, key, source)
        if obj is not None and (obj.damaged or obj.nlink >= self._max_links(store)):
            return None  # kept private and valid instead
        if obj is not None:
            if obj.ino == pst.st_ino:
                return [AlreadyShared(pyc.path)]
            if self._xattrs_differ(pyc.at, obj) is not None:
                return None
            self._gains_name(obj, pst.st_dev)
            return [Link(pyc.at, pst, self._name(obj), obj.ino, self._last_name(pst))]
        if fits_object:
            new = StoreObject(
                store.path,
                key,
                0,
                pst.st_ino,
                self._adopted(pst),
                True,
                xattrs=self._facts.xattrs(pyc.at),
            )
            return [Adopt(pyc.at, pst, self._new_pyc_object(store, new))]
        try:
            data = self._facts.whole(pyc.at, pst)
        except (OSError, FileChanged):
            return None
        # A new inode: its number is only known once written, so later venvs of this run
        # compare against -1 and link to it by path.
        new = StoreObject(store.path, key, 0, -1, 2, True, xattrs=self._facts.xattrs(pyc.at))
        path = self._new_pyc_object(store, new)
        data = bytecode.with_source_stat(data, source.mtime_ns, source.size)
        return [
            CreatePyc(path, data, pyc.at, pst),
            Link(pyc.at, pst, path, -1, self._last_name(pst)),
        ]

    def _share_hashed(
        self,
        store: Store,
        key: PycKey,
        source: SourceObject,
        before: tuple[int, int],
        pyc: Pyc,
        read: tuple[bytecode.PycHeader, bytes, os.stat_result],
        source_file: tuple[At, os.stat_result],
    ) -> list[Decision]:
        """Copy-on-write, where this process computes the interpreter's source hash: every
        pyc of the group becomes a whole clone of one object, a checked hash-based pyc
        (PEP 552) of the source. Its header holds no mtime, so it is valid for each venv's
        source whatever its own mtime, and the importer checks it against the source's
        bytes on each import (an edited source is recompiled). The code in it is the first
        venv's, whose compiled-in source path the importer replaces on load."""
        parsed, header, pst = read
        obj = self._pyc_object(store, key, source)
        if obj is not None and obj.damaged:
            return []  # kept as it is: valid, and private
        try:
            mine = self._facts.extents(pyc.at)
        except (OSError, FileChanged, FolderSwapped):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        if cow.inline(mine):
            return [Refused(pyc.path, Reason.INLINE_DATA)]
        if obj is not None and cow.same_blocks(mine, self._object_extents(obj)):
            return [AlreadyShared(pyc.path)]
        if pst.st_nlink > 1 or cow.any_shared(mine):
            # Its blocks are not its own alone: replacing it would free nothing (and a
            # new object made from it would cost its size). A later copy makes the object.
            return []
        target = obj.header if obj is not None else self._hashed_header(source_file, key)
        if target is None:
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        refused = _valid_before(pyc, (parsed, header), before, target)
        if refused is not None:
            return [refused]
        if obj is not None:
            return [ClonePyc(pyc.at, pst, self._name(obj), b"")]
        path = self._new_pyc_object(
            store, StoreObject(store.path, key, 0, -1, 1, True, header=target)
        )
        if header == target:
            return [Adopt(pyc.at, pst, path)]
        try:
            data = self._facts.whole(pyc.at, pst)
        except (OSError, FileChanged, FolderSwapped):
            self.undo_pyc(path)
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        return [CreatePyc(path, target + data[16:], pyc.at, pst), ClonePyc(pyc.at, pst, path, b"")]

    def _hashed_header(self, source_file: tuple[At, os.stat_result], key: PycKey) -> bytes | None:
        """The checked hash-based header of the group's pycs, from the venv's source, if it
        still holds the bytes its RECORD names; None if it changed since it was proven."""
        at, st = source_file
        try:
            data = self._facts.whole(at, st)
        except (OSError, FileChanged, FolderSwapped):
            return None
        if hashlib.new(key.source.algorithm, data).digest() != key.source.digest:
            return None
        return bytecode.checked_hash_header(key.magic, data)

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
            new = StoreObject(store.path, key, 0, -1, 1, True)
            return [Adopt(pyc.at, pst, self._new_pyc_object(store, new))]
        try:
            mine = self._facts.extents(pyc.at)
        except (OSError, FileChanged):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        if cow.same_blocks(mine, self._object_extents(obj), pst.st_blksize):
            return [AlreadyShared(pyc.path)]
        if pst.st_nlink > 1 or cow.any_shared(mine):
            return []  # its blocks are not its own alone: replacing it would free nothing
        return [ClonePyc(pyc.at, pst, self._name(obj), header)]

    def _new_pyc_object(self, store: Store, new: StoreObject) -> str:
        """Note a pyc object this run makes (generation 0 of its group); its path."""
        assert isinstance(new.key, PycKey)
        self._known_pycs(store.device)[new.key] = new
        path = self._name(new)
        self._note_folders(store, path)
        return path

    def undo_pyc(self, object_path: str) -> None:
        """A pyc object could not be written or adopted (the last decision's): forget it."""
        obj = self._named_by(object_path)
        if obj is None:
            return
        self._named = None
        for known in self._pyc_objects.values():
            if isinstance(obj.key, PycKey) and known.get(obj.key) is obj:
                del known[obj.key]

    def keep_private(
        self, source: SourceObject, before: tuple[int, int], pyc: Pyc
    ) -> list[Decision]:
        """The pyc could not be shared: keep it valid for the linked source on its own."""
        try:
            header_bytes, pst = self._facts.header(pyc.at)
            header = bytecode.parse_header(header_bytes)
        except (OSError, ValueError, FileChanged):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        if header.hash_based or bytecode.valid_for_stat(header, source.mtime_ns, source.size):
            return []  # a hash-based pyc does not depend on the source's stat
        if not bytecode.valid_for_stat(header, *before):
            return [Refused(pyc.path, Reason.PYC_CHANGED)]
        return self._rewrite(pyc, pst, source)


def _pyc_key(
    source: SourceObject,
    pyc: Pyc,
    magic: bytes,
    flags: int,
    build: Build,
    owner: os.stat_result | None,
) -> PycKey:
    """The group of the pyc: owner, the venv pyc's stat, whose owner and mode a hardlink
    shares; None by copy-on-write, where each pyc keeps its own (0, 0, 0)."""
    return PycKey(
        source=source.key,
        source_generation=source.generation,
        suffix=sys.intern(pyc.suffix),
        magic=interned(magic),
        flags=flags,
        build=build.ident,
        uid=interned(owner.st_uid) if owner else 0,
        gid=interned(owner.st_gid) if owner else 0,
        mode=interned(stat.S_IMODE(owner.st_mode)) if owner else 0,
    )


def _valid_before(
    pyc: Pyc,
    read: tuple[bytecode.PycHeader, bytes],
    before: tuple[int, int],
    hashed: bytes,
) -> Refused | None:
    """Why the venv's pyc (its header, parsed and as bytes) is not a valid pyc of the
    proven source (its own, timestamp pyc, or the group's checked hash-based one), or
    None when it is."""
    parsed, header = read
    if parsed.hash_based:
        return None if header == hashed else Refused(pyc.path, Reason.PYC_HASH_BASED)
    if not bytecode.valid_for_stat(parsed, *before):
        return Refused(pyc.path, Reason.PYC_STALE)
    return None
