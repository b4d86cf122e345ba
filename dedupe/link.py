"""The hardlink executor (Hardlinks, a dedupe.execute.Executor) and the operations it
and maintenance use: the only module that changes files in venvs or adds objects to a
store.

Every venv file is reached through its folder's handle (dedupe.tree: At.folder()) and
the `dir_fd` forms of the calls, so a venv folder swapped for a symlink while we work
redirects nothing. Store paths are used as paths: the store is a private folder of the
user running us (dedupe.store.check_private), where no one else can swap a folder.
A handle is used at once, before the tree is asked for another (see dedupe.tree.Tree).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import itertools
import os
import queue
import secrets
import stat
import threading
from collections.abc import Callable
from typing import TypeVar

from .decisions import Adopt, CreatePyc, Link, Observed, RewritePyc
from .execute import Failed, TooManyLinks
from .hashing import fingerprint, same_content, same_file, xattrs
from .problems import Problem
from .reasons import Reason
from .store import TMP_PREFIX
from .tree import At, FolderSwapped

# Every read of a venv file: never through a symlink, never blocking on a FIFO.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

# Test hook: called with a stage name and the venv file acted on, at the start of each
# operation and between its steps, so fault tests can kill the process (or swap a folder)
# at the moments that matter (after the temp link, before the rename).
fault_hook = None

T = TypeVar("T")


# Temp names: a random part drawn once per process (names stay unguessable; a forked
# worker draws its own) and a counter, so a name costs no system call. A name that
# exists already is never reused: the link or create fails with EEXIST, and the next
# number is taken.
_token = secrets.token_hex(8)
_numbers = itertools.count()


def _new_token() -> None:
    global _token
    _token = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_token)


def _temp_name() -> str:
    return f"{TMP_PREFIX}{_token}.{next(_numbers):x}"


def _at_temp_name(make: Callable[[str], T]) -> tuple[str, T]:
    """(tmp, make(tmp)) for the first temp name that make does not find taken
    (FileExistsError)."""
    while True:
        tmp = _temp_name()
        try:
            return tmp, make(tmp)
        except FileExistsError:
            continue


def _hook(stage: str, at: At) -> None:
    if fault_hook is not None:
        fault_hook(stage, at)


def _os_failure(exc: OSError, what: str) -> Failed:
    return Failed(Reason.LINK_FAILED, f"{what}: {exc.strerror or exc}", error=True)


def make_folders(folder: str) -> None:
    """Make folder and any missing parent inside the store with mode 0o755 whatever the
    umask: a group-writable store folder would let others plant objects."""
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)


def _folder(at: At) -> tuple[int, str]:
    """The handle of at's folder and at's name; a folder swapped since it was listed
    fails the action, and changes nothing."""
    try:
        return at.folder()
    except FolderSwapped:
        raise Failed(
            Reason.CHANGED_DURING_SCAN,
            f"{at.path!r}: a folder on its way was swapped during the scan",
            error=False,
        ) from None
    except OSError as exc:
        raise _os_failure(exc, f"cannot open the folder of {at.path!r}") from None


def _lstat(fd: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=fd, follow_symlinks=False)


def _check_unchanged(fd: int, name: str, expected: os.stat_result, shown: str) -> None:
    # Re-stat right before touching the name: a file that moved since its bytes were
    # proven (pip replaced it, someone edited it) is left alone.
    try:
        now = _lstat(fd, name)
    except OSError:
        raise Failed(Reason.CHANGED_DURING_SCAN, f"{shown!r} vanished", error=False) from None
    if not same_file(now, expected):
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{shown!r} changed after it was read", error=False
        )


def adopt(action: Adopt) -> None:
    """Give the proven file's inode a name in the store: it becomes the object."""
    _hook("adopt", action.at)
    fd, name = _folder(action.at)
    _check_unchanged(fd, name, action.st, action.path)
    try:
        make_folders(os.path.dirname(action.object_path))
        # link() itself is atomic and fails if the name exists; follow_symlinks=False
        # links the name we checked, never what a symlink swapped in would point to.
        os.link(name, action.object_path, src_dir_fd=fd, follow_symlinks=False)
    except OSError as exc:
        raise _os_failure(exc, f"cannot add {action.path!r} to the store") from None
    _hook("adopted", action.at)
    # The link took whatever inode was at the path at that instant. The object is sound
    # only if that is the inode we proved, unwritten since (pip may have renamed a new
    # file over the path in between: then the object is not ours to keep).
    try:
        ost = os.lstat(action.object_path)
    except OSError as exc:
        raise _os_failure(exc, f"cannot check {action.object_path!r}") from None
    if not same_content(ost, action.st):
        with contextlib.suppress(OSError):
            os.unlink(action.object_path)
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{action.path!r} changed while it was stored", error=False
        )


_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _exchange(fd: int, a: str, b: str) -> bool:
    """Atomically swap two names in the folder fd (renameat2 RENAME_EXCHANGE). False where
    the libc or filesystem cannot; raises OSError for other failures (ENOENT: a name is
    gone)."""
    if _renameat2 is None:
        return False
    if _renameat2(fd, os.fsencode(a), fd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def _same_content_inode(a: os.stat_result, b: os.stat_result) -> bool:
    # rename changes an inode's ctime, so compare what a write would change instead.
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
    )


# Removes the temp name (in the folder fd) of a displaced file, given its lstat:
# unlink_now, or an Unlinker.
Discard = Callable[[int, str, os.stat_result], None]


def unlink_now(fd: int, name: str, st: os.stat_result) -> None:
    os.unlink(name, dir_fd=fd)


class Unlinker:
    """Frees displaced files in background threads, out of their venv folders.

    Freeing a file's blocks is the largest single cost of a first run: a few hundred
    microseconds per file in the kernel on a filesystem mounted with `discard`. So the
    file's last name is renamed into the store's trash folder at once (its venv folder
    must not grow by the temp names of files waiting to be freed) and unlinked there by a
    thread while the scan goes on; the threads are handed names in batches, since waking
    one costs about as much as the rename. A file with other names is unlinked at once:
    that frees nothing, and its other names must see their new link count and ctime
    before the scan stats them. A name left in the trash by a kill is removed by the next
    run. close() waits for every removal; failures are kept as (path, message).
    """

    BATCH = 64

    def __init__(self, trash: str, threads: int = 4, backlog: int = 8) -> None:
        self._trash = trash
        self._threads_wanted = threads
        self._threads: list[threading.Thread] = []  # started on first use, with the trash
        # Bounded: the trash holds at most (backlog + threads + 1) * BATCH waiting files.
        self._queue: queue.Queue[list[str] | None] = queue.Queue(backlog)
        self._batch: list[str] = []
        self.failures: list[tuple[str, str]] = []
        self._trash_made = False

    def __call__(self, fd: int, name: str, st: os.stat_result) -> None:
        """Take the displaced file name (in the folder fd). Never raises: the swap before
        it is done, so a file that cannot be freed is a failure to report (its temp name
        is removed by the next run), not a link that failed."""
        if not self._threads:
            self._start()
        try:
            if st.st_nlink > 1 or not self._trash_made:
                os.unlink(name, dir_fd=fd)
                return
            binned = os.path.join(self._trash, name)
            try:
                os.rename(name, binned, src_dir_fd=fd)
            except OSError:
                os.unlink(name, dir_fd=fd)
                return
        except OSError as exc:
            self.failures.append((name, f"cannot remove a replaced copy: {exc.strerror}"))
            return
        self._batch.append(binned)
        if len(self._batch) >= self.BATCH:
            self._queue.put(self._batch)
            self._batch = []

    def _start(self) -> None:
        try:
            make_folders(self._trash)  # on first use, as a dry run foresees
            self._trash_made = True
        except OSError:
            self._trash_made = False  # a full disk, say: unlink in place instead
        for _ in range(self._threads_wanted):
            worker = threading.Thread(target=self._work, name="venv-dedupe-unlink", daemon=True)
            worker.start()
            self._threads.append(worker)

    def _work(self) -> None:
        while (batch := self._queue.get()) is not None:
            for path in batch:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self.failures.append((path, f"cannot remove a replaced copy: {exc.strerror}"))

    def close(self) -> None:
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []
        for _ in self._threads:
            self._queue.put(None)
        for worker in self._threads:
            worker.join()
        self._threads.clear()


def _swap_in(
    fd: int,
    tmp: str,
    name: str,
    expected: os.stat_result,
    object_ino: int,
    discard: Discard,
    shown: str,
) -> None:
    """Put the link at tmp in place of name (both in the folder fd), never losing a file
    someone put at name.

    With RENAME_EXCHANGE the inode that was at name survives under tmp, so if pip
    replaced the file after our last check, its new file is swapped back instead of being
    unlinked. Without it (old kernel, some filesystems) a plain rename has a window of
    microseconds between the check and the rename.
    """
    if not _exchange(fd, tmp, name):
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        return
    displaced = _lstat(fd, tmp)
    if _same_content_inode(displaced, expected):
        discard(fd, tmp, displaced)
        return
    # Someone replaced the file between our check and the swap: give it back.
    _exchange(fd, tmp, name)
    if _lstat(fd, tmp).st_ino == object_ino:
        os.unlink(tmp, dir_fd=fd)
    raise Failed(Reason.CHANGED_DURING_SCAN, f"{shown!r} was replaced during the scan", error=False)


def replace(action: Link, discard: Discard = unlink_now) -> None:
    """Atomically replace the file by a link to its store object; the file's own inode
    goes through discard."""
    _hook("replace", action.at)
    fd, name = _folder(action.at)
    # The temp name sits in the file's own folder so that rename() is atomic and stays on
    # one filesystem; its prefix lets the next run recognise leftovers of a killed run.
    try:
        tmp, _ = _at_temp_name(
            lambda t: os.link(action.object_path, t, dst_dir_fd=fd, follow_symlinks=False)
        )
    except OSError as exc:
        if exc.errno == errno.EMLINK:
            raise TooManyLinks(action.object_path) from None
        raise _os_failure(exc, f"cannot link into the folder of {action.path!r}") from None
    try:
        _hook("linked", action.at)
        if _lstat(fd, tmp).st_ino != action.object_ino:
            raise Failed(
                Reason.CHANGED_DURING_SCAN,
                f"store object {action.object_path!r} was replaced",
                error=False,
            )
        _check_unchanged(fd, name, action.st, action.path)
        _hook("checked", action.at)
        _swap_in(fd, tmp, name, action.st, action.object_ino, discard, action.path)
    except BaseException as exc:
        _remove_own_link(fd, tmp, action.object_ino)
        if isinstance(exc, OSError):
            raise _os_failure(exc, f"cannot replace {action.path!r}") from None
        raise
    _hook("renamed", action.at)


def _remove_own_copy(fd: int, tmp: str, copy_ino: int | None, not_ino: int = -1) -> None:
    """Remove a temp copy of ours: before the swap (copy_ino None) whatever is at tmp
    but an inode not_ino; after it only our copy, since a swap back may have put a file
    someone else wrote at tmp."""
    if copy_ino is not None:
        _remove_own_link(fd, tmp, copy_ino)
        return
    with contextlib.suppress(OSError):
        if _lstat(fd, tmp).st_ino != not_ino:
            os.unlink(tmp, dir_fd=fd)


def _remove_own_link(fd: int, tmp: str, object_ino: int) -> None:
    """Remove the temp name only while it is our link to the object: after a swap back
    it may hold a file someone else wrote, which must never be deleted."""
    with contextlib.suppress(OSError):
        if _lstat(fd, tmp).st_ino == object_ino:
            os.unlink(tmp, dir_fd=fd)


def _open_like(fd: int, name: str, like_st: os.stat_result) -> int:
    """The venv file name (in the folder fd) opened for reading, if it still is the
    inode like_st describes: the original whose owner, attributes and mode a copy takes."""
    src = os.open(name, _READ, dir_fd=fd)
    if not same_file(os.fstat(src), like_st):
        os.close(src)
        raise Failed(Reason.CHANGED_DURING_SCAN, f"{name!r} changed", error=False)
    return src


def _write_temp(dir_fd: int, data: bytes, src: int, like_st: os.stat_result, shown: str) -> str:
    """A new file in the folder dir_fd holding data, on disk, with the owner, extended
    attributes and mode of the open file src (the inode like_st, named shown); its name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    tmp, fd = _at_temp_name(lambda t: os.open(t, flags, 0o600, dir_fd=dir_fd))
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
        _take_metadata(fd, src, shown, like_st)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    return tmp


def create_pyc(action: CreatePyc) -> int:
    """Write a new pyc object; returns its inode number."""
    folder, object_name = os.path.split(action.object_path)
    vfd, name = _folder(action.at)
    try:
        make_folders(folder)
        src = _open_like(vfd, name, action.st)
        try:
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                tmp = _write_temp(dfd, action.data, src, action.st, action.at.path)
                try:
                    # link() fails if the name exists: a pyc object is never overwritten.
                    os.link(tmp, object_name, src_dir_fd=dfd, dst_dir_fd=dfd)
                    return _lstat(dfd, object_name).st_ino
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dfd)
            finally:
                os.close(dfd)
        finally:
            os.close(src)
    except OSError as exc:
        raise _os_failure(exc, f"cannot write {action.object_path!r}") from None


def rewrite_pyc(action: RewritePyc, discard: Discard = unlink_now) -> None:
    """Replace a venv's pyc by a private copy whose header names the new source stat."""
    fd, name = _folder(action.at)
    try:
        src = _open_like(fd, name, action.st)
        try:
            tmp = _write_temp(fd, action.data, src, action.st, action.path)
        finally:
            os.close(src)
    except OSError as exc:
        raise _os_failure(exc, f"cannot write beside {action.path!r}") from None
    copy_ino = None
    try:
        _check_unchanged(fd, name, action.st, action.path)
        copy_ino = _lstat(fd, tmp).st_ino
        _swap_in(fd, tmp, name, action.st, copy_ino, discard, action.path)
    except BaseException as exc:
        _remove_own_copy(fd, tmp, copy_ino)
        if isinstance(exc, OSError):
            raise _os_failure(exc, f"cannot replace {action.path!r}") from None
        raise


class Hardlinks:
    """Shares files by hardlinks into the store: dedupe.execute's Executor of a real run.
    Displaced files are freed by an Unlinker per filesystem, through its store's trash."""

    def __init__(self, trash_folders: dict[int, str]) -> None:
        self._unlinkers = {device: Unlinker(path) for device, path in trash_folders.items()}

    def adopt(self, action: Adopt) -> Observed:
        adopt(action)
        return _observe(action.object_path)

    def link(self, action: Link) -> Observed:
        if action.object_ino == -1:  # a pyc object written just before: its inode now
            action = dataclasses.replace(action, object_ino=os.lstat(action.object_path).st_ino)
        replace(action, self._unlinkers[action.st.st_dev])
        return _observe(action.object_path)

    def create_pyc(self, action: CreatePyc) -> Observed:
        return _observe(action.object_path, create_pyc(action))

    def rewrite_pyc(self, action: RewritePyc) -> None:
        rewrite_pyc(action, self._unlinkers[action.st.st_dev])

    def remove_leftover(self, at: At) -> bool:
        return remove_leftover(at)

    def remove_store_leftover(self, path: str) -> bool:
        return remove_store_leftover(path)

    def close(self) -> list[Problem]:
        """Wait until the replaced copies are gone (du must see them gone)."""
        problems = []
        for unlinker in self._unlinkers.values():
            unlinker.close()
            problems += [Problem(path, error) for path, error in unlinker.failures]
        return problems


def _observe(object_path: str, new_ino: int | None = None) -> Observed:
    # Right after our own change, before anyone else could touch the object: its new
    # known-good state for the planner.
    try:
        return Observed(fingerprint(os.lstat(object_path)), new_ino)
    except OSError:
        return Observed(None, new_ino)


def remove_leftover(at: At) -> bool:
    """Remove a temp link that a killed run left in a venv folder; it is only ever a
    second name of an object (or a copy that was never swapped in)."""
    try:
        _hook("leftover", at)
        fd, name = at.folder()
        if name.startswith(TMP_PREFIX) and stat.S_ISREG(_lstat(fd, name).st_mode):
            _hook("leftover-checked", at)
            os.unlink(name, dir_fd=fd)
            return True
    except OSError:
        pass
    return False


def remove_store_leftover(path: str) -> bool:
    """Remove a temp file a killed run left in the store (a private folder of ours)."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
            return True
    except OSError:
        pass
    return False


# --- store maintenance: detach, gc, quarantine (issue #3) --------------------------------
# dedupe.maintenance decides; these carry its decisions out, each one file at a time.

_COPY_CHUNK = 1 << 20


def make_private(at: At, object_ino: int) -> os.stat_result:
    """Replace the file at, a name of the store object object_ino, by a private copy with
    the same bytes, mode, owner and times; return the stat of the shared inode it replaced.

    The copy is written and fsync'ed under a temp name in the file's own folder, then
    swapped in with the same re-stat and atomic exchange as replace(): the path is never
    missing, and a file that pip put there meanwhile is never lost.
    """
    path = at.path
    _hook("detach", at)
    fd, name = _folder(at)
    # Stat now, not when the detach was planned: detaching another name of the same inode
    # since then changed its link count and ctime.
    try:
        st = _lstat(fd, name)
    except OSError:
        raise Failed(Reason.CHANGED_DURING_SCAN, f"{path!r} vanished", error=False) from None
    if not stat.S_ISREG(st.st_mode) or st.st_ino != object_ino:
        raise Failed(
            Reason.CHANGED_DURING_SCAN, f"{path!r} is no longer linked to the store", error=False
        )
    tmp = _temp_name()
    copy_ino = None
    try:
        copy_ino = _private_copy(fd, name, st, tmp, path)
        _hook("copied", at)
        _check_unchanged(fd, name, st, path)
        _swap_in(fd, tmp, name, st, copy_ino, unlink_now, path)
    except BaseException as exc:
        _remove_own_copy(fd, tmp, copy_ino, not_ino=st.st_ino)  # never a name of the object
        if isinstance(exc, OSError):
            raise _os_failure(exc, f"cannot give {path!r} a private copy") from None
        raise
    return st


def _private_copy(fd: int, name: str, st: os.stat_result, tmp: str, shown: str) -> int:
    """Write a copy of name (proven to be the inode st describes) at tmp, both in the
    folder fd; the copy's inode."""
    src = os.open(name, _READ, dir_fd=fd)
    try:
        if not same_file(os.fstat(src), st):
            raise Failed(
                Reason.CHANGED_DURING_SCAN, f"{shown!r} changed before it was copied", error=False
            )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dst = os.open(tmp, flags, 0o600, dir_fd=fd)
        try:
            while chunk := os.read(src, _COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
            if not same_file(os.fstat(src), st):
                raise Failed(
                    Reason.CHANGED_DURING_SCAN,
                    f"{shown!r} changed while it was copied",
                    error=False,
                )
            _take_metadata(dst, src, shown, st)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            # The bytes must be on disk before the name points at them: after a crash the
            # path holds either the shared inode or a complete copy.
            os.fsync(dst)
            return os.fstat(dst).st_ino
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _take_metadata(dst: int, src: int, path: str, st: os.stat_result) -> None:
    """Give the new file dst the owner, extended attributes and mode of path (open as
    src, the inode st describes). Owner first: chown clears set-id bits and file
    capabilities, so the extended attributes and the mode go on after it."""
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(dst, st.st_uid, st.st_gid)
        except PermissionError:
            raise Failed(
                Reason.LINK_FAILED,
                f"cannot give the copy of {path!r} its owner uid {st.st_uid} gid "
                f"{st.st_gid}: run as root or as that user",
                error=True,
            ) from None
    wanted = xattrs(src)
    for name, value in wanted:
        with contextlib.suppress(OSError):
            os.setxattr(dst, name, value)
    if xattrs(dst) != wanted:
        # A copy without its original's ACL or label must not stand in for it (and the
        # planner links further files to a pyc object on the word of these attributes).
        raise Failed(
            Reason.XATTRS_DIFFER,
            f"cannot give the copy of {path!r} the extended attributes of its original",
            error=True,
        )
    os.fchmod(dst, stat.S_IMODE(st.st_mode))


def remove_unused(path: str, ino: int) -> os.stat_result | None:
    """Unlink the store object at path when it is still inode ino and no venv links to it
    (link count 1, checked right before the unlink); its stat when removed, else None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_ino != ino or st.st_nlink != 1:
        return None
    os.unlink(path)
    return st


def remove_empty_folder(path: str) -> bool:
    """rmdir, which itself refuses a folder that is not empty."""
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def quarantine(path: str, destination: str) -> None:
    """Move a damaged store object out of the store's object trees, to destination (a
    free name in the same store): one rename, so no later scan finds it under its name,
    and every venv file linked to it keeps its bytes."""
    make_folders(os.path.dirname(destination))
    if os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), destination)
    os.rename(path, destination)
