"""The copy-on-write executor: Reflinks, dedupe.execute's Executor of a real run where a
store's filesystem shares data blocks between files (XFS with reflink, btrfs).

No venv source file is replaced: the kernel shares its blocks with the store's copy of
its content (dedupe.cow.dedupe, FIDEDUPERANGE), after comparing the bytes itself under
the inodes' locks, so the file keeps its inode, owner, mode, times and extended
attributes, and a file written since it was proven is left as it is. The store's copies
are clones of a venv file (FICLONE), proven after the clone in the store's own file,
which no one else can write. Pycs are replaced, as the hardlink executor replaces them
(dedupe.link.copies), by a clone of their group's object: whole, where the object is a
checked hash-based pyc of the source, or with their own header.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator

from .. import cow
from ..decisions import Adopt, ClonePyc, CreatePyc, Link, Observed, RewritePyc
from ..execute import Failed
from ..hashing import FileChanged, digest_file, fingerprint, same_file
from ..problems import Problem
from ..reasons import Reason
from ..store import COW_OBJECT_MODE
from ..tree import At
from .copies import write_all, write_like
from .hardlinks import Hardlinks
from .objects import make_folders
from .steps import READ, at_temp_name, check_unchanged, folder, hook, os_failure, remove_own
from .swap import swap_in

__all__ = ["Reflinks"]


class Reflinks:
    """Shares data blocks with the store on the devices cow names; on the others it hands
    each action to the hardlink executor."""

    def __init__(self, trash_folders: dict[int, str], cow_devices: frozenset[int]) -> None:
        self._hardlinks = Hardlinks(trash_folders)
        self._cow = cow_devices

    def adopt(self, action: Adopt) -> Observed:
        if action.st.st_dev not in self._cow:
            return self._hardlinks.adopt(action)
        hook("adopt", action.at)
        fd, name = folder(action.at)
        try:
            src = _open_proven(fd, name, action.st, action.path)
            try:
                ino = _store_clone(src, action)
            finally:
                os.close(src)
        except OSError as exc:
            raise os_failure(exc, f"cannot add {action.path!r} to the store") from None
        hook("adopted", action.at)
        return _observe(action.object_path, ino)

    def link(self, action: Link) -> Observed | None:
        if action.st.st_dev not in self._cow:
            return self._hardlinks.link(action)
        hook("replace", action.at)
        fd, name = folder(action.at)
        try:
            dst = _open_proven(fd, name, action.st, action.path)
            try:
                src = os.open(action.object_path, READ)
                try:
                    hook("checked", action.at)
                    with _refused("to share"):
                        _, equal = cow.dedupe(src, dst, action.st.st_size)
                finally:
                    os.close(src)
            finally:
                os.close(dst)
        except OSError as exc:
            raise os_failure(exc, f"cannot share the data of {action.path!r}") from None
        if not equal:
            raise Failed(
                Reason.CHANGED_DURING_SCAN,
                f"{action.path!r} no longer holds its store object's bytes",
                error=False,
            )
        hook("renamed", action.at)
        return None  # the object was only read

    def create_pyc(self, action: CreatePyc) -> Observed:
        if action.st.st_dev not in self._cow:
            return self._hardlinks.create_pyc(action)
        try:
            ino = _store_write(action)
        except OSError as exc:
            raise os_failure(exc, f"cannot write {action.object_path!r}") from None
        return _observe(action.object_path, ino)

    def rewrite_pyc(self, action: RewritePyc) -> int:
        return self._hardlinks.rewrite_pyc(action)

    def clone_pyc(self, action: ClonePyc) -> int:
        """Replace the venv pyc by a clone of its group's object with its own header."""
        hook("clone-pyc", action.at)
        fd, name = folder(action.at)
        try:
            src = _open_proven(fd, name, action.st, action.path)
            try:
                obj = os.open(action.object_path, READ)
                try:

                    def fill(tmp: int) -> None:
                        # The first block written, the rest cloned: writing the header
                        # over a clone would copy its block on write, and XFS reserves
                        # a whole copy-on-write extent (128 KiB) for it, freed only
                        # half an hour later.
                        block = action.st.st_blksize
                        with _refused("a clone"):
                            if not action.header:
                                cow.clone(obj, tmp)
                                return
                            first = os.pread(obj, block, 0)
                            write_all(tmp, action.header + first[len(action.header) :])
                            cow.clone_tail(obj, tmp, block)

                    written = bool(action.header)
                    tmp, copy_ino = write_like(
                        fd, fill, src, action.st, action.path, times=True, written=written
                    )
                finally:
                    os.close(obj)
            finally:
                os.close(src)
        except OSError as exc:
            raise os_failure(exc, f"cannot write beside {action.path!r}") from None
        try:
            check_unchanged(fd, name, action.st, action.path)
            swap_in(
                fd,
                tmp,
                name,
                action.st,
                copy_ino,
                self._hardlinks.discard(action.st.st_dev),
                action.path,
            )
        except BaseException as exc:
            remove_own(fd, tmp, copy_ino)
            if isinstance(exc, OSError):
                raise os_failure(exc, f"cannot replace {action.path!r}") from None
            raise
        return copy_ino

    def remove_leftover(self, at: At) -> bool:
        return self._hardlinks.remove_leftover(at)

    def remove_store_leftover(self, path: str) -> bool:
        return self._hardlinks.remove_store_leftover(path)

    def close(self) -> list[Problem]:
        return self._hardlinks.close()


def _open_proven(fd: int, name: str, expected: os.stat_result, shown: str) -> int:
    """The venv file name (in the folder fd) open for reading, if it still is the inode
    expected, unwritten since its bytes were proven."""
    try:
        opened = os.open(name, READ, dir_fd=fd)
    except FileNotFoundError:
        raise Failed(Reason.CHANGED_DURING_SCAN, f"{shown!r} vanished", error=False) from None
    if not same_file(os.fstat(opened), expected):
        os.close(opened)
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{shown!r} changed after it was read", error=False
        )
    return opened


@contextlib.contextmanager
def _refused(what: str) -> Iterator[None]:
    """A filesystem that cannot share (cow.Unsupported) fails the action, as an error."""
    try:
        yield
    except cow.Unsupported as exc:
        raise Failed(
            Reason.LINK_FAILED, f"the filesystem refused {what}: {exc.strerror}", error=True
        ) from None


def _store_clone(src: int, action: Adopt) -> int:
    """The object: a clone of the open venv file src, proven, under its name; its inode.

    The clone writes no data, only a mapping of the venv file's blocks, which XFS and btrfs
    log in order with the link that names it: unlike a copy, it needs no fsync before its
    name (a crash loses both or neither). It is proven in the store's own file before it
    gets its name: against the recorded digest (a source), or (a pyc, which has none) by
    the venv file's stat, unchanged from before the clone to after it, when a write would
    have moved its ctime."""

    def fill(out: int, tmp: str, dfd: int) -> None:
        with _refused("a clone"):
            cow.clone(src, out)
        _prove_clone(src, tmp, dfd, action)

    return _new_object(action.object_path, fill)


def _store_write(action: CreatePyc) -> int:
    """A new pyc object holding action.data; its inode.

    Its bytes are written back to disk before it gets its name (cow.write_back), so a
    power cut leaves no name pointing at a part of them; that costs no fsync, whose
    journal commit took a third of a first run's time."""

    def fill(out: int, _: str, dfd: int) -> None:
        write_all(out, action.data)
        with _refused("a clone"):
            cow.write_back(out, dfd)

    return _new_object(action.object_path, fill)


def _new_object(object_path: str, fill: Callable[[int, str, int], None]) -> int:
    """A new store object, ours and read-only like every copy-on-write object (no venv's
    owner may write the store's copy); its inode. fill(fd, temp name, folder fd) fills it
    under a temp name in its folder, and only then does it get its name."""
    folder_path, object_name = os.path.split(object_path)
    make_folders(folder_path)
    dfd = os.open(folder_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        tmp, out = at_temp_name(lambda t: os.open(t, flags, 0o600, dir_fd=dfd))
        try:
            fill(out, tmp, dfd)
            os.fchmod(out, COW_OBJECT_MODE)
            ino = os.fstat(out).st_ino
            # link() fails if the name exists: an object is never overwritten.
            os.link(tmp, object_name, src_dir_fd=dfd, dst_dir_fd=dfd)
            return ino
        finally:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
    finally:
        os.close(dfd)


def _prove_clone(src: int, tmp: str, dfd: int, action: Adopt) -> None:
    key = action.key
    proven = same_file(os.fstat(src), action.st)
    if proven and key is not None:
        try:
            proven = digest_file(tmp, key.algorithm, dir_fd=dfd) == key.digest
        except FileChanged:
            proven = False
    if not proven:
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{action.path!r} changed while it was stored", error=False
        )


def _observe(object_path: str, ino: int) -> Observed:
    try:
        st = os.lstat(object_path)
    except OSError:
        return Observed(None, ino)
    return Observed(fingerprint(st) if stat.S_ISREG(st.st_mode) else None, ino)
