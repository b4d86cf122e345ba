"""The content-addressed store: where it lives, how objects are named, its index and lock.

Layout of a store folder:
    FORMAT                      "venv-dedupe store 1"
    lock                        flock()ed for a whole run; holds the holder's pid
    objects/<alg>/<hh>/<rest>.<uid>.<gid>.<mode>.<n>
The object name carries the owner, group and permission bits of its inode because a
hardlink shares them: files of different owners or modes must never share an object.
<n> counts objects of the same content when one reached the filesystem's link limit.
    pyc/<alg>/<hh>/<source object name>.<suffix>.<magic>.<flags>.<uid>.<gid>.<mode>.<n>
A pyc object is one valid compilation of a source object, shared by every venv whose
source is that object: grouped by what makes a pyc valid, never by its raw bytes.
    scan-cache/<hash of venv path>.json
What the last scan found in each venv (dedupe.memo); losing it costs only time.
    trash/
Replaced venv files on their way out (link.Unlinker); empty when no run is under way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StoreError, StoreLockedError
from .lockfds import close_lock_fd, open_lock_fd

FORMAT = "venv-dedupe store 1\n"
# Prefix of every temp name we create, in venvs and in the store; the next run removes
# any that a killed run left behind.
TMP_PREFIX = ".venv-dedupe-tmp-"
DEFAULT_STORE_NAME = ".venv-dedupe-store"
CACHE_DIR = "scan-cache"
TRASH_DIR = "trash"
LOCK_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """What may share one inode: same content (by its recorded digest) and same metadata."""

    algorithm: str
    digest: bytes
    uid: int
    gid: int
    mode: int  # stat.S_IMODE bits

    def relpath(self, generation: int) -> str:
        hexdigest = self.digest.hex()
        name = f"{hexdigest[2:]}.{self.uid}.{self.gid}.{self.mode:o}.{generation}"
        return os.path.join("objects", self.algorithm, hexdigest[:2], name)


def parse_object_name(algorithm: str, shard: str, name: str) -> tuple[ObjectKey, int] | None:
    """Inverse of ObjectKey.relpath; None for anything that is not an object name."""
    parts = name.split(".")
    if len(parts) != 5:
        return None
    rest, uid, gid, mode, generation = parts
    try:
        digest = bytes.fromhex(shard + rest)
        return ObjectKey(algorithm, digest, int(uid), int(gid), int(mode, 8)), int(generation)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, order=True)
class PycKey:
    """What may share one pyc inode: the same source object (its generation fixes the
    mtime a timestamp pyc records), interpreter magic, flags, cache tag and optimisation
    level, and the pyc's own owner, group and permission bits."""

    source: ObjectKey
    source_generation: int
    suffix: str  # cache tag and optimisation level: "cpython-311" or "cpython-311.opt-1"
    magic: bytes
    flags: int
    uid: int
    gid: int
    mode: int

    def relpath(self, generation: int) -> str:
        src = self.source
        hexdigest = src.digest.hex()
        name = (
            f"{hexdigest[2:]}.{src.uid}.{src.gid}.{src.mode:o}.{self.source_generation}."
            f"{self.suffix.replace('.', '+')}.{self.magic.hex()}.{self.flags}."
            f"{self.uid}.{self.gid}.{self.mode:o}.{generation}"
        )
        return os.path.join("pyc", src.algorithm, hexdigest[:2], name)


def parse_pyc_name(algorithm: str, shard: str, name: str) -> tuple[PycKey, int] | None:
    """Inverse of PycKey.relpath; None for anything that is not a pyc object name."""
    parts = name.split(".")
    if len(parts) != 12:
        return None
    source = parse_object_name(algorithm, shard, ".".join(parts[:5]))
    if source is None:
        return None
    suffix, magic, flags, uid, gid, mode, generation = parts[5:]
    try:
        key = PycKey(
            source[0],
            source[1],
            suffix.replace("+", "."),
            bytes.fromhex(magic),
            int(flags),
            int(uid),
            int(gid),
            int(mode, 8),
        )
        return key, int(generation)
    except ValueError:
        return None


@dataclass(slots=True)
class StoreIndex:
    """What the store held when the run began: objects by key and their inode numbers."""

    objects: dict[ObjectKey, list[tuple[int, int]]]  # key -> [(generation, inode)]
    inodes: set[int]  # of source and pyc objects
    pycs: dict[PycKey, list[tuple[int, int]]] = field(default_factory=dict)
    sources_by_inode: dict[int, tuple[ObjectKey, int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.inodes)


class Store:
    """An opened store folder on one filesystem."""

    def __init__(self, path: str, device: int) -> None:
        self.path = path
        self.device = device
        self._lock_fd: int | None = None

    def object_path(self, key: ObjectKey, generation: int) -> str:
        return os.path.join(self.path, key.relpath(generation))

    def pyc_path(self, key: PycKey, generation: int) -> str:
        return os.path.join(self.path, key.relpath(generation))

    def _iter(self, top: str) -> Iterator[tuple[str, str, os.DirEntry[str]]]:
        tree = os.path.join(self.path, top)
        for algorithm in _listdir(tree):
            alg_dir = os.path.join(tree, algorithm)
            for shard in _listdir(alg_dir):
                try:
                    it = os.scandir(os.path.join(alg_dir, shard))
                except NotADirectoryError:
                    continue
                except OSError as exc:
                    raise StoreError(
                        f"cannot list the store folder {exc.filename!r}: {exc.strerror}"
                    ) from None
                with it:
                    for entry in it:
                        if entry.is_file(follow_symlinks=False):
                            yield algorithm, shard, entry

    def iter_all(self) -> Iterator[tuple[ObjectKey | PycKey, int, os.DirEntry[str]]]:
        """Source objects, then pyc objects."""
        yield from self.iter_objects()
        yield from self.iter_pycs()

    def leftovers(self) -> list[str]:
        """Temp files a killed run left in the store: a pyc object or a memo half written,
        a replaced venv file in the trash."""
        found = [
            entry.path
            for top in ("objects", "pyc")
            for _algorithm, _shard, entry in self._iter(top)
            if entry.name.startswith(TMP_PREFIX)
        ]
        for top, prefix in ((CACHE_DIR, TMP_PREFIX), (TRASH_DIR, "")):
            folder = os.path.join(self.path, top)
            with contextlib.suppress(OSError):
                found += [
                    os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(prefix)
                ]
        return found

    def iter_objects(self) -> Iterator[tuple[ObjectKey, int, os.DirEntry[str]]]:
        """Source objects (not pycs): key, generation, directory entry."""
        for algorithm, shard, entry in self._iter("objects"):
            parsed = parse_object_name(algorithm, shard, entry.name)
            if parsed is not None:
                yield parsed[0], parsed[1], entry

    def iter_pycs(self) -> Iterator[tuple[PycKey, int, os.DirEntry[str]]]:
        for algorithm, shard, entry in self._iter("pyc"):
            parsed = parse_pyc_name(algorithm, shard, entry.name)
            if parsed is not None:
                yield parsed[0], parsed[1], entry

    def load_index(self) -> StoreIndex:
        # scandir gives d_ino without a stat: an unchanged rerun recognises linked files
        # from inode numbers alone (DESIGN.md invariant 8).
        objects: dict[ObjectKey, list[tuple[int, int]]] = {}
        inodes: set[int] = set()
        pycs: dict[PycKey, list[tuple[int, int]]] = {}
        sources_by_inode: dict[int, tuple[ObjectKey, int]] = {}
        for key, generation, entry in self.iter_objects():
            objects.setdefault(key, []).append((generation, entry.inode()))
            inodes.add(entry.inode())
            sources_by_inode[entry.inode()] = (key, generation)
        for pkey, generation, entry in self.iter_pycs():
            pycs.setdefault(pkey, []).append((generation, entry.inode()))
            inodes.add(entry.inode())
        for generations in [*objects.values(), *pycs.values()]:
            generations.sort()
        return StoreIndex(objects, inodes, pycs, sources_by_inode)

    def inodes(self) -> set[int]:
        """The inode numbers of every object, source and pyc: all an inventory needs."""
        return {entry.inode() for _key, _generation, entry in self.iter_all()}

    def folder_bytes(self) -> int:
        """Allocated bytes of the store's own folders and files, objects excluded: what the
        store costs beside the objects, so that reclaimed bytes can be squared with du.
        The scan's own state (memos, trash folder) is left out: see scan_state_bytes."""
        total = 0
        for folder, dirs, files in os.walk(self.path):
            if folder == self.path:
                dirs[:] = [d for d in dirs if d not in (CACHE_DIR, TRASH_DIR)]
            names = files if folder == self.path else []
            for name in [folder, *(os.path.join(folder, n) for n in names)]:
                with contextlib.suppress(OSError):
                    total += os.lstat(name).st_blocks * 512
            dirs.sort()
        return total

    def scan_state_bytes(self) -> int:
        """Allocated bytes of the scan's memos (scan-cache/) and its trash folder: they
        change with every run that walks a venv, whatever it links."""
        total = 0
        for top in (CACHE_DIR, TRASH_DIR):
            folder = os.path.join(self.path, top)
            with contextlib.suppress(OSError):
                total += os.lstat(folder).st_blocks * 512
                for entry in os.scandir(folder):
                    with contextlib.suppress(OSError):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
        return total

    def lock(self, *, timeout: float = 0.0, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the store's lock for this process.

        When another run holds it, poll every LOCK_POLL_SECONDS for up to timeout seconds
        (on_wait is told once, with a message naming the holder's pid), then raise
        StoreLockedError. The default, timeout=0, raises at once.
        """
        lock_path = os.path.join(self.path, "lock")
        try:
            fd = open_lock_fd(lock_path)
        except OSError as exc:
            raise StoreError(
                f"cannot open the lock file {lock_path!r} of store {self.path!r}: "
                f"{exc.strerror or exc}"
            ) from None
        try:
            self._wait_for_lock(fd, lock_path, timeout, on_wait)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            close_lock_fd(fd)
            raise
        self._lock_fd = fd

    def _wait_for_lock(
        self, fd: int, lock_path: str, timeout: float, on_wait: Callable[[str], None] | None
    ) -> None:
        # flock with LOCK_NB in a loop rather than a blocking flock: a blocking call cannot
        # be given a deadline, and the user is told once that we wait, and for whom.
        deadline = time.monotonic() + max(timeout, 0.0)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            holder = _lock_holder(fd)
            left = deadline - time.monotonic()
            if left <= 0:
                waited = f"; waited {timeout:g} s" if timeout > 0 else ""
                raise StoreLockedError(
                    f"store {self.path!r} is locked by another venv-dedupe run (pid {holder}, "
                    f"lock file {lock_path!r}){waited}; try again when it has finished"
                )
            if not told and on_wait is not None:
                on_wait(
                    f"waiting up to {timeout:g} s for the lock of store {self.path!r}, "
                    f"held by pid {holder} (lock file {lock_path!r})"
                )
                told = True
            time.sleep(min(LOCK_POLL_SECONDS, left))

    def clock_ns(self) -> int:
        """The filesystem's time now: the ctime it gives the lock file when we touch it
        (under the lock, so in a real run only)."""
        assert self._lock_fd is not None, "the store is not locked"
        os.utime(self._lock_fd)
        return os.fstat(self._lock_fd).st_ctime_ns

    def unlock(self) -> None:
        if self._lock_fd is not None:
            close_lock_fd(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    @property
    def lock_fd(self) -> int | None:
        return self._lock_fd


def _lock_holder(fd: int) -> str:
    """The pid the lock's holder wrote into the lock file ("unknown" in the instant
    between its flock and its write)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


def saved_bytes(st: os.stat_result) -> int:
    """Allocated bytes an object saves: its n - 1 venv names share one inode that n - 1
    copies would otherwise need (the store's own name is the nth)."""
    return max(st.st_nlink - 2, 0) * st.st_blocks * 512


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StoreError(f"cannot list the store folder {path!r}: {exc.strerror}") from None


def open_store(path: str, *, create: bool) -> Store | None:
    """Open (and with create=True, make) the store folder at path.

    Returns None when it does not exist and create is False (a dry run never writes).
    """
    path = os.path.abspath(path)
    format_path = os.path.join(path, "FORMAT")
    if create:
        try:
            if not os.path.lexists(path):
                _make_private_folders(path)
            for name in os.listdir(path):
                if name.startswith(f"{TMP_PREFIX}FORMAT-") and not _alive(name):
                    os.unlink(os.path.join(path, name))  # a killed run was writing it
            if not os.path.lexists(format_path) and _unmade(path):
                _write_format(format_path)  # new, or an empty folder the user made for it
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(
                f"cannot create the store {path!r}: {exc.strerror}; "
                "pass --store DIR with a folder you may write on the venvs' filesystem"
            ) from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if create:
            raise
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"store {path!r} is not a folder")
    check_private(path, st)
    try:
        with open(format_path, encoding="ascii", errors="replace") as f:
            found = f.read(100)
    except FileNotFoundError:
        if _unmade(path):
            return Store(path, st.st_dev)  # an empty folder, or a store a kill cut short
        raise StoreError(
            f"{path!r} is not a venv-dedupe store (no FORMAT file) and not empty; "
            "choose another --store folder"
        ) from None
    if found != FORMAT:
        raise StoreError(
            f"store {path!r} has format {found.strip()!r}, expected {FORMAT.strip()!r}"
        )
    return Store(path, st.st_dev)


def _unmade(path: str) -> bool:
    """A folder with nothing in it but what making a store puts there before FORMAT: an
    empty objects/ and temp files. Such a folder is finished, not refused."""
    names = {n for n in os.listdir(path) if not n.startswith(TMP_PREFIX)}
    objects = os.path.join(path, "objects")
    return names <= {"objects"} and (not os.path.isdir(objects) or not os.listdir(objects))


def _alive(tmp_name: str) -> bool:
    """Whether the process whose pid ends a temp FORMAT name still runs: a run making
    the same new store beside us (before either holds the lock) must keep its file."""
    try:
        os.kill(int(tmp_name.rsplit("-", 1)[1]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _write_format(format_path: str) -> None:
    """Write FORMAT through a temp file and link(), so that a kill never leaves a FORMAT
    that is there but empty (which every later run would refuse)."""
    folder = os.path.dirname(format_path)
    tmp = os.path.join(folder, f"{TMP_PREFIX}FORMAT-{os.getpid()}")
    with open(tmp, "w", encoding="ascii") as f:
        f.write(FORMAT)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, format_path)
    finally:
        os.unlink(tmp)


def _make_private_folders(path: str) -> None:
    """Make the store folder 0o700 and objects/ 0o755 whatever the umask. No one else
    needs the store's names: venvs reach their files through their own paths, and a
    file that was private only because its venv's folder was 0o700 must stay so."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    objects = os.path.join(path, "objects")
    os.makedirs(objects, mode=0o755, exist_ok=True)
    os.chmod(path, 0o700)
    os.chmod(objects, 0o755)


def check_private(path: str, st: os.stat_result | None = None) -> None:
    """Refuse a store folder that others may write or that another user owns, as ssh
    refuses a loose ~/.ssh: whoever can add or rename names in it can swap the lock file,
    or plant objects for venvs to be linked to, and so reach every venv that shares them.
    objects/ is checked too, and must be a real folder, not a symlink."""
    euid = os.geteuid()
    quoted = shlex.quote(path)
    for folder in (path, os.path.join(path, "objects")):
        if folder == path and st is not None:
            fst = st
        else:
            try:
                fst = os.lstat(folder)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(fst.st_mode):
                raise StoreError(
                    f"store {path!r}: {folder!r} is not a folder (a symlink?); "
                    "refusing to use this store"
                )
        if fst.st_uid != euid:
            raise StoreError(
                f"store folder {folder!r} is owned by uid {fst.st_uid}, not by the user "
                f"running venv-dedupe (uid {euid}): refusing to use it. Run as its owner, "
                f"or make it yours (chown -R {euid} {quoted}), or pass --store DIR with a "
                "folder of your own"
            )
        if fst.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            who = {stat.S_IWGRP: "its group", stat.S_IWOTH: "others"}.get(
                fst.st_mode & (stat.S_IWGRP | stat.S_IWOTH), "its group and others"
            )
            raise StoreError(
                f"store folder {folder!r} is writable by {who} "
                f"(mode {stat.S_IMODE(fst.st_mode):04o}): refusing to use it. Fix it with: "
                f"chmod go-w {shlex.quote(folder)}"
            )


def mount_point(path: str) -> str:
    """The mount point of the filesystem holding path (walking up until st_dev changes)."""
    path = os.path.realpath(path)
    device = os.lstat(path).st_dev
    while path != os.path.dirname(path):
        parent = os.path.dirname(path)
        if os.lstat(parent).st_dev != device:
            return path
        path = parent
    return path


def nearest_existing(path: str) -> str:
    """path, or its nearest ancestor that exists."""
    while not os.path.lexists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def _device_of_nearest(path: str) -> int | None:
    """st_dev of path or of its nearest existing ancestor."""
    try:
        return os.stat(nearest_existing(path)).st_dev
    except OSError:
        return None


def user_store_path(environ: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if environ is None else environ
    home = env.get("HOME") or str(Path.home())
    data = env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(data, "venv-dedupe", "store")


def default_store_path(venv_root: str, device: int) -> str:
    """The documented default: the user's data folder when it is on the venv's filesystem,
    else .venv-dedupe-store at that filesystem's mount point (as pnpm places its store)."""
    user = user_store_path()
    if _device_of_nearest(user) == device:
        return user
    return os.path.join(mount_point(venv_root), DEFAULT_STORE_NAME)


def can_create(path: str) -> OSError | None:
    """Why a store could not be created at path (checked without writing), or None."""
    probe = nearest_existing(path)
    if not os.access(probe, os.W_OK | os.X_OK):
        return OSError(errno.EACCES, os.strerror(errno.EACCES), probe)
    return None
