"""The planner's model of the store: the objects it knows, their link counts, the
names this run moves, the folders adopting creates, and the checks that an object still
is what its name says. It reads only through Facts and never changes anything."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from .. import bytecode
from ..census import Census
from ..cow import Extent
from ..decisions import Observed, Refused, SourceObject
from ..hashing import FileChanged, fingerprint, same_content_fingerprint
from ..proof import Facts
from ..reasons import Reason
from ..store import ObjectKey, PycKey, Store, StoreIndex
from ..tree import At


@dataclass(slots=True)
class StoreObject:
    """What the planner knows of one store object. Its path is made when asked for, not
    kept: a scan knows an object per distinct file, and its key is held already."""

    root: str  # the store's path
    key: ObjectKey | PycKey
    generation: int
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
    xattrs: tuple[tuple[str, bytes], ...] | None = None
    extents: list[Extent] | None = None  # a copy-on-write object's, once asked for
    header: bytes | None = None  # a copy-on-write pyc object's first 16 bytes

    @property
    def path(self) -> str:
        # Made on every question (a path per object would cost memory): an f-string, at
        # a third of os.path.join's cost; root is absolute and relpath never is.
        return f"{self.root}/{self.key.relpath(self.generation)}"


class StoreModel:
    def __init__(
        self,
        census: Census,
        stores: dict[int, Store],
        indexes: dict[int, StoreIndex],
        facts: Facts,
        cow: frozenset[int] = frozenset(),
    ) -> None:
        self._cow = cow  # the devices whose stores share by copy-on-write
        # Inodes with other names whose data this run shares (copy-on-write): their other
        # names are already shared then, though a dry run's extents do not show it.
        self._cow_shared: set[tuple[int, int]] = set()
        self._census = census
        self._facts = facts
        self._stores = stores
        self._indexes = indexes
        # By device, then key: the same content and owner on two filesystems is two objects.
        self._objects: dict[int, dict[ObjectKey, StoreObject | None]] = {}
        self._remaining_links: dict[tuple[int, int], int] = {}
        self._link_max: dict[int, int] = {}
        self.new_folders: set[str] = set()  # store folders that adopting creates
        self._pyc_objects: dict[int, dict[PycKey, StoreObject | None]] = {}
        # The object the last decision names, by its path: what observe() and the undos
        # that follow the decision look for (one decision names one object at most).
        self._named: tuple[str, StoreObject] | None = None
        self._old_folders: set[str] = set()  # store folders that were there already
        # The last __pycache__ asked about: a RECORD lists a folder's files together, and
        # a cache of every folder would hold a path per folder of every venv.
        self._pycache_writable: tuple[At | None, bool] = (None, False)

    def cow(self, device: int) -> bool:
        """Whether the device's store shares data blocks (copy-on-write), not inodes."""
        return device in self._cow

    def observe(self, object_path: str, observed: Observed | None) -> None:
        """What the executor left the object as (None: it changed nothing, a dry run):
        the new known-good state, taken before anyone else could touch it."""
        obj = self._named_by(object_path)
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

    def _name(self, obj: StoreObject) -> str:
        """The object's path, for a decision to name it by."""
        path = obj.path
        self._named = (path, obj)
        return path

    def _named_by(self, object_path: str) -> StoreObject | None:
        named = self._named
        return named[1] if named is not None and named[0] == object_path else None

    def _known(self, device: int) -> dict[ObjectKey, StoreObject | None]:
        """The source objects this run knows on the device (None: known to be absent)."""
        return self._objects.setdefault(device, {})

    def _known_pycs(self, device: int) -> dict[PycKey, StoreObject | None]:
        return self._pyc_objects.setdefault(device, {})

    def indexed_source(self, store: Store, ino: int) -> tuple[ObjectKey, int] | None:
        return self._indexes[store.device].sources_by_inode.get(ino)

    def _unchanged(self, obj: StoreObject) -> bool:
        if obj.seen is None:
            return True  # planned in this run (a dry run), or just adopted: nothing to compare
        try:
            return fingerprint(self._facts.stat(obj.path)) == obj.seen
        except OSError:
            return False

    def _xattrs_differ(self, at: At, obj: StoreObject | None) -> Refused | None:
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

    def _gains_name(self, obj: StoreObject, device: int) -> None:
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

    def _max_links(self, store: Store) -> int:
        if store.device not in self._link_max:
            self._link_max[store.device] = self._facts.link_max(store.path)
        return self._link_max[store.device]

    def _object(self, store: Store, key: ObjectKey) -> StoreObject | None:
        known = self._known(store.device)
        try:
            return known[key]
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
                obj = StoreObject(
                    store.path,
                    key,
                    generation,
                    ost.st_ino,
                    ost.st_nlink,
                    False,
                    mtime_ns=ost.st_mtime_ns,
                )
        known[key] = obj
        return obj

    def _check_object(self, obj: StoreObject, key: ObjectKey, st: os.stat_result) -> str | None:
        """Why the store object must not be linked to, or None when its bytes and metadata
        are what its name says. Someone may have written or chmod'ed a venv file in place,
        which reaches the shared inode."""
        try:
            ost = self._facts.stat(obj.path)
            metadata = (ost.st_uid, ost.st_gid, stat.S_IMODE(ost.st_mode))
            # A copy-on-write object shares no inode: its owner and mode are the store's.
            if not key.cow and metadata != (key.uid, key.gid, key.mode):
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

    def _pyc_object(self, store: Store, key: PycKey, source: SourceObject) -> StoreObject | None:
        known = self._known_pycs(store.device)
        try:
            return known[key]
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
                obj = StoreObject(
                    store.path,
                    key,
                    generation,
                    ost.st_ino,
                    ost.st_nlink,
                    True,
                    seen=fingerprint(ost),
                )
                obj.damaged = self._check_pyc_object(obj, key, source)
        known[key] = obj
        return obj

    def _check_pyc_object(self, obj: StoreObject, key: PycKey, source: SourceObject) -> str | None:
        path = obj.path
        try:
            header_bytes, ost = self._facts.header(path)
            header = bytecode.parse_header(header_bytes)
        except (OSError, ValueError, FileChanged) as exc:
            return f"pyc object {path!r} cannot be read as a pyc: {exc}"
        if key.source.cow:
            # A checked hash-based pyc of the source (each venv's pyc becomes a whole
            # clone of it), or the first venv's (each keeps its own header block).
            obj.header = header_bytes
            if (header.magic, header.flags) != (key.magic, key.flags):
                return f"pyc object {path!r} is not a pyc of its group"
            return None
        if not bytecode.valid_for_stat(header, source.mtime_ns, source.size) or (
            header.magic,
            header.flags,
            ost.st_uid,
            ost.st_gid,
            stat.S_IMODE(ost.st_mode),
        ) != (key.magic, key.flags, key.uid, key.gid, key.mode):
            return f"pyc object {path!r} is not valid for its source object"
        return None

    def _object_extents(self, obj: StoreObject) -> list[Extent]:
        if obj.extents is None:
            try:
                obj.extents = self._facts.extents(obj.path)
            except OSError:
                obj.extents = []
        return obj.extents

    def _cow_note(self, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            self._cow_shared.add((st.st_dev, st.st_ino))
