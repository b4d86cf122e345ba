"""The store's journal: what a run is about to do in a venv, kept until it is done, so
that the scan after a kill can finish the job (dedupe.scan.recovery).

Two things a kill leaves that a later scan cannot find on its own: temp names in venv
folders that no RECORD lists any more (pip uninstalled the distribution meanwhile), and
timestamp pycs gone stale because their source became a link to a store object (its
mtime is the object's) before the pycs were dealt with. So before a run works on a batch
of a venv's files it writes an entry naming the venv (root, device, inode), the venv
folders it may create temp names in, and each source whose pycs it may touch: the
source's digest, its (mtime_ns, size) before the run, which is what the pycs that were
valid record, and the pycs' paths. The entry is removed once the batch is done.

An entry is one JSON file in STORE/journal/, named by the writer's pid and a counter,
written under a temp name, fsync'ed and linked into place (and the folder fsync'ed)
before any of its work starts: after a kill, or a crash, it is there whole or not at all.
Paths are venv-relative, checked when read to stay inside the venv. Parsing takes bytes,
not paths; the Journal class is all that touches the folder.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import DedupeError, StoreError
from .store import JOURNAL_DIR, TMP_PREFIX

__all__ = [
    "BATCH",
    "JOURNAL_FORMAT",
    "Entry",
    "Journal",
    "JournalError",
    "PendingSource",
    "format_entry",
    "parse_entry",
    "writer_pid",
]

JOURNAL_FORMAT = 1
# Items of work per entry: an entry costs two fsyncs, and after a kill the next scan
# looks at the folders and pycs of at most this many files per entry.
BATCH = 1024


class JournalError(DedupeError):
    """A journal entry that cannot be used; the message lists every problem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingSource:
    """A source the batch may link, with the pycs beside it it may then have to fix."""

    source: str  # venv-relative path
    algorithm: str
    digest: bytes  # as RECORD gave it: the object it would be linked to
    mtime_ns: int  # the source's stat before the run: its valid pycs record these
    size: int
    pycs: tuple[str, ...]  # venv-relative paths, in the source's __pycache__


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One batch of work in one venv."""

    root: str
    device: int
    ino: int  # the venv root's inode: a venv made anew at the same path is another
    folders: tuple[str, ...]  # venv-relative folders it may create temp names in
    sources: tuple[PendingSource, ...] = ()


def format_entry(entry: Entry) -> bytes:
    data = {
        "format": JOURNAL_FORMAT,
        "root": entry.root,
        "device": entry.device,
        "ino": entry.ino,
        "folders": list(entry.folders),
        "sources": [
            [s.source, s.algorithm, s.digest.hex(), s.mtime_ns, s.size, list(s.pycs)]
            for s in entry.sources
        ],
    }
    # ensure_ascii: a name that is not UTF-8 (kept as surrogates) survives as an escape.
    return json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def inside(rel: str) -> bool:
    """Whether a venv-relative path names something inside the venv ('' is the root)."""
    if rel == "":
        return True
    return "\0" not in rel and all(p not in ("", ".", "..") for p in rel.split("/"))


def _pyc_of(source: str, pyc: str) -> bool:
    """Whether pyc is a name in the __pycache__ beside source, of that module."""
    folder, _, name = source.rpartition("/")
    cache = f"{folder}/__pycache__" if folder else "__pycache__"
    pyc_folder, _, pyc_name = pyc.rpartition("/")
    stem = name.removesuffix(".py")
    return (
        name.endswith(".py")
        and pyc_folder == cache
        and pyc_name.startswith(f"{stem}.")
        and pyc_name.endswith(".pyc")
    )


def _is_int(value: object) -> bool:
    return type(value) is int and value >= 0


def _source(i: int, row: object, problems: list[str]) -> PendingSource | None:
    where = f"source {i}"
    if not (isinstance(row, list) and len(row) == 6):
        problems.append(f"{where}: not a list of 6 fields: {row!r}")
        return None
    source, algorithm, digest, mtime_ns, size, pycs = row
    before = len(problems)
    if not (isinstance(source, str) and source and inside(source)):
        problems.append(f"{where}: path {source!r} is not inside the venv")
    if not (isinstance(algorithm, str) and algorithm.isalnum()):
        problems.append(f"{where}: algorithm {algorithm!r} is not a name")
    try:
        raw = bytes.fromhex(digest) if isinstance(digest, str) else None
    except ValueError:
        raw = None
    if not raw:
        problems.append(f"{where}: digest {digest!r} is not hex")
    if not (_is_int(mtime_ns) and _is_int(size)):
        problems.append(f"{where}: mtime {mtime_ns!r} and size {size!r} must be integers")
    if not (isinstance(pycs, list) and all(isinstance(p, str) for p in pycs)):
        problems.append(f"{where}: pycs {pycs!r} is not a list of paths")
    elif isinstance(source, str) and not all(_pyc_of(source, p) for p in pycs):
        problems.append(f"{where}: pycs {pycs!r} are not all beside {source!r}")
    if len(problems) > before:
        return None
    assert raw is not None
    return PendingSource(
        source=source,
        algorithm=algorithm,
        digest=raw,
        mtime_ns=mtime_ns,
        size=size,
        pycs=tuple(pycs),
    )


def parse_entry(data: bytes) -> Entry:
    """An entry from the bytes format_entry wrote; JournalError listing every problem."""
    try:
        raw: Any = json.loads(data)
    except ValueError as exc:
        raise JournalError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise JournalError(f"not a JSON object: {type(raw).__name__}")
    problems = []
    if raw.get("format") != JOURNAL_FORMAT:
        problems.append(f"format {raw.get('format')!r}, expected {JOURNAL_FORMAT}")
    root: Any = raw.get("root")
    if not (isinstance(root, str) and root.startswith("/")):
        problems.append(f"root {root!r} is not an absolute path")
    device: Any = raw.get("device")
    ino: Any = raw.get("ino")
    if not (_is_int(device) and _is_int(ino)):
        problems.append(f"device {device!r} and ino {ino!r} must be integers")
    folders: Any = raw.get("folders")
    if not (isinstance(folders, list) and all(isinstance(f, str) and inside(f) for f in folders)):
        problems.append(f"folders {folders!r} are not all folders inside the venv")
    rows: Any = raw.get("sources")
    if not isinstance(rows, list):
        problems.append(f"sources {rows!r} is not a list")
        rows = []
    sources = [_source(i, row, problems) for i, row in enumerate(rows)]
    if problems:
        raise JournalError("; ".join(problems))
    return Entry(
        root=root,
        device=device,
        ino=ino,
        folders=tuple(folders),
        sources=tuple(s for s in sources if s is not None),
    )


def writer_pid(name: str) -> int | None:
    """The pid of the process that wrote the entry of this file name, if it says."""
    pid, sep, _rest = name.partition("-")
    return int(pid) if sep and pid.isdigit() else None


class Journal:
    """The journal folder of one store. Written only under the store's lock."""

    _numbers = itertools.count()

    def __init__(self, store_path: str) -> None:
        self.folder = os.path.join(store_path, JOURNAL_DIR)

    def names(self) -> list[str]:
        """The entries there now, oldest writer first (by name); none without a folder."""
        try:
            found = os.listdir(self.folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(
            (n for n in found if n.endswith(".json") and not n.startswith(TMP_PREFIX)),
            key=lambda n: (writer_pid(n) or 0, n),
        )

    def read(self, name: str) -> bytes:
        with open(os.path.join(self.folder, name), "rb") as f:
            return f.read()

    def write(self, entry: Entry) -> str:
        """Put the entry in the journal, on disk before this returns; its file name.
        StoreError when it cannot be: no work may start that a kill could leave unknown."""
        tmp = os.path.join(self.folder, f"{TMP_PREFIX}{os.getpid()}.json")
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            _write_synced(tmp, format_entry(entry))
            try:
                name = self._link_new(tmp)
            finally:
                os.unlink(tmp)
            # The new name must reach the disk before the work it announces.
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StoreError(
                f"cannot write to the store's journal {self.folder!r}: {exc.strerror or exc}"
            ) from None
        return name

    def _link_new(self, tmp: str) -> str:
        """Link tmp to the first free entry name. link(), not rename(): an entry that a
        killed run with our pid left (kept for a later scan) is never overwritten."""
        while True:
            name = f"{os.getpid()}-{next(self._numbers)}.json"
            try:
                os.link(tmp, os.path.join(self.folder, name))
                return name
            except FileExistsError:
                continue

    def remove(self, name: str) -> None:
        # No fsync: an entry that a crash brings back only costs the next scan a look.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.folder, name))

    @contextlib.contextmanager
    def pending(self, entry: Entry) -> Iterator[None]:
        """The entry is in the journal while the block runs. It stays when the block
        raises: work may be half done, as after a kill, and the next scan finishes it."""
        name = self.write(entry)
        yield
        self.remove(name)


def _write_synced(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
