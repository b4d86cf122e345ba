"""The content-addressed store: where it lives, how objects are named, its index and lock.

Layout of a store folder:
    FORMAT                      "venv-dedupe store 1"
    lock                        flock()ed for a whole run; holds the holder's pid
    objects/<alg>/<hh>/<rest>.<uid>.<gid>.<mode>.<n>
The object name carries the owner, group and permission bits of its inode because a
hardlink shares them: files of different owners or modes must never share an object.
<n> counts objects of the same content when one reached the filesystem's link limit.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreError, StoreLockedError

FORMAT = "venv-dedupe store 1\n"
DEFAULT_STORE_NAME = ".venv-dedupe-store"


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


@dataclass(slots=True)
class StoreIndex:
    """What the store held when the run began: objects by key and their inode numbers."""

    objects: dict[ObjectKey, list[tuple[int, int]]]  # key -> [(generation, inode)]
    inodes: set[int]

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

    def iter_objects(self) -> Iterator[tuple[ObjectKey, int, os.DirEntry[str]]]:
        objects = os.path.join(self.path, "objects")
        for algorithm in _listdir(objects):
            alg_dir = os.path.join(objects, algorithm)
            for shard in _listdir(alg_dir):
                try:
                    it = os.scandir(os.path.join(alg_dir, shard))
                except NotADirectoryError:
                    continue
                with it:
                    for entry in it:
                        parsed = parse_object_name(algorithm, shard, entry.name)
                        if parsed is not None and entry.is_file(follow_symlinks=False):
                            yield parsed[0], parsed[1], entry

    def load_index(self) -> StoreIndex:
        # scandir gives d_ino without a stat: an unchanged rerun recognises linked files
        # from inode numbers alone (DESIGN.md invariant 8).
        objects: dict[ObjectKey, list[tuple[int, int]]] = {}
        inodes: set[int] = set()
        for key, generation, entry in self.iter_objects():
            objects.setdefault(key, []).append((generation, entry.inode()))
            inodes.add(entry.inode())
        for generations in objects.values():
            generations.sort()
        return StoreIndex(objects, inodes)

    def folder_bytes(self) -> int:
        """Allocated bytes of the store's own folders and files, objects excluded: what the
        store costs beside the objects, so that reclaimed bytes can be squared with du."""
        total = 0
        for folder, dirs, files in os.walk(self.path):
            names = files if folder == self.path else []
            for name in [folder, *(os.path.join(folder, n) for n in names)]:
                with contextlib.suppress(OSError):
                    total += os.lstat(name).st_blocks * 512
            dirs.sort()
        return total

    def lock(self) -> None:
        """Take the store's lock for this process, or raise StoreLockedError at once."""
        lock_path = os.path.join(self.path, "lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"store {self.path!r} is locked by another venv-dedupe run (pid {holder}, "
                f"lock file {lock_path!r}); try again when it has finished"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def open_store(path: str, *, create: bool) -> Store | None:
    """Open (and with create=True, make) the store folder at path.

    Returns None when it does not exist and create is False (a dry run never writes).
    """
    path = os.path.abspath(path)
    format_path = os.path.join(path, "FORMAT")
    if create:
        try:
            os.makedirs(os.path.join(path, "objects"), mode=0o755, exist_ok=True)
            if not os.path.exists(format_path):
                with open(format_path, "x", encoding="ascii") as f:
                    f.write(FORMAT)
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
    try:
        with open(format_path, encoding="ascii", errors="replace") as f:
            found = f.read(100)
    except FileNotFoundError:
        if not os.listdir(path):
            return Store(path, st.st_dev)  # an empty folder the user made for the store
        raise StoreError(
            f"{path!r} is not a venv-dedupe store (no FORMAT file) and not empty; "
            "choose another --store folder"
        ) from None
    if found != FORMAT:
        raise StoreError(
            f"store {path!r} has format {found.strip()!r}, expected {FORMAT.strip()!r}"
        )
    return Store(path, st.st_dev)


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


def _device_of_nearest(path: str) -> int | None:
    """st_dev of path or of its nearest existing ancestor."""
    while True:
        try:
            return os.stat(path).st_dev
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent
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
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        return OSError(errno.EACCES, os.strerror(errno.EACCES), probe)
    return None
