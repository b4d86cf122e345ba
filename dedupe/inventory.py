"""What a venv holds: its RECORD entries, each classified as a candidate or skipped with a reason.

Paths are resolved component by component through directory listings read through folder
handles (dedupe.tree), never through the kernel's path walk, so a symlink anywhere on the
way is seen and not followed, and a file already linked to its store object is known by
d_ino without a stat. Every item names its file by handle and relative path (tree.At).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from .discovery import Venv
from .hashing import read_small
from .listing import Listings, Pyc, Stamps
from .quiet import scandir_quietly
from .reasons import Reason
from .records import WEAK_ALGORITHMS, RecordEntry, RecordHash, iter_record
from .store import ObjectKey, object_key
from .tree import At, FolderSwapped, Tree, venv_tree

MAX_RECORD_BYTES = 64 << 20


# Files each install writes for itself: sharing them saves nothing or breaks the venv.
# REFER_TO: pdm's note of the cache folder an install.cache venv's files link into.
_DIST_INFO_PRIVATE = frozenset(
    {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "RECORD.jws", "RECORD.p7s", "REFER_TO"}
)
_SCRIPT_DIRS = frozenset({"bin", "Scripts"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """An installed file whose metadata allows sharing; its bytes are not proven yet."""

    at: At
    key: ObjectKey
    st: os.stat_result
    dist: str
    pycs: tuple[Pyc, ...] = ()

    @property
    def path(self) -> str:
        return self.at.path


@dataclass(frozen=True, slots=True)
class Shared:
    """A file that already is a store object's inode."""

    at: At
    ino: int
    pycs: tuple[Pyc, ...] = ()

    @property
    def path(self) -> str:
        return self.at.path


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str
    reason: Reason
    pycs: tuple[Pyc, ...] = ()  # a skipped source's pycs stay as they are
    # A symlink that RECORD gives no digest for: how pdm's install.cache installs files.
    cache_link: bool = False


@dataclass(frozen=True, slots=True)
class Notice:
    """Something about the venv the report says once, that is no problem (a warning)."""

    message: str


@dataclass(frozen=True, slots=True)
class BadInput:
    """A RECORD we could not fully use; becomes a warning in the report."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class Leftover:
    """A temp link left behind by a killed run."""

    at: At


Item = Candidate | Shared | Skipped | BadInput | Leftover | Notice


def string_reason(parts: list[str], entry_hash_alg: str | None, strong: bool) -> Reason | None:
    """The skip reason that the venv-relative path and hash alone decide, if any."""
    name = parts[-1]
    if (
        (name in _DIST_INFO_PRIVATE and len(parts) > 1 and parts[-2].endswith(".dist-info"))
        or name == "pyvenv.cfg"
        or name.endswith(".pth")
        or name.startswith("__editable__")
        or parts[0] in _SCRIPT_DIRS
        or ("~" in "".join(parts) and any(part.startswith("~") for part in parts))
    ):
        return Reason.PER_INSTALL
    if name.endswith((".pyc", ".pyo")):
        return Reason.BYTECODE
    if entry_hash_alg is None:
        return Reason.NO_HASH
    if not strong:
        return Reason.WEAK_HASH if entry_hash_alg in WEAK_ALGORITHMS else Reason.UNKNOWN_HASH
    return None


def _plain_bytecode(path: str) -> bool:
    """A relative RECORD path of a .pyc with nothing that would make _classify count it
    as a skip instead of dropping it as bytecode: no '.' or '..' component (it could climb
    out of the venv), no '//', no '~' (pip's leftovers) and no '__editable__'."""
    return (
        path.endswith((".pyc", ".pyo"))
        and not path.startswith((".", "/"))
        and "/." not in path
        and "//" not in path
        and "~" not in path
        and "__editable__" not in path
    )


def read_text(path: str, limit: int = MAX_RECORD_BYTES, dir_fd: int | None = None) -> str:
    """A RECORD (or INSTALLER) as text. surrogateescape keeps undecodable bytes, so a
    non-UTF-8 file name still maps back to the exact bytes on disk through os.fsencode."""
    return read_small(path, limit, dir_fd).decode("utf-8", "surrogateescape")


def dist_infos(site_packages: str) -> list[str]:
    """The .dist-info folders of a site-packages, sorted; none when it cannot be listed."""
    try:
        with scandir_quietly(site_packages) as it:
            return sorted(
                e.name
                for e in it
                if e.name.endswith(".dist-info") and e.is_dir(follow_symlinks=False)
            )
    except OSError:
        return []


_KIND_REASON = {"l": Reason.SYMLINK, "missing": Reason.MISSING, "unreadable": Reason.UNREADABLE}


def share_of(size: int, shares: int) -> int:
    """Which of shares parts a file of this size belongs to: one size, one part, and
    sizes spread evenly (Fibonacci hashing)."""
    return (((size * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> 32) % shares


def inventory(
    venv: Venv,
    store_inodes: set[int],
    store_device: int,
    trace: Stamps | None = None,
    share: tuple[int, int] | None = None,
    tree: Tree | None = None,
    *,
    cow: bool = False,
) -> Iterator[Item]:
    """Yield every RECORD entry of the venv, classified; each venv path at most once.
    With a trace, stamp every folder listed and every RECORD read, before it is. With
    share (part, parts), Candidate and Shared items come only for files whose size is in
    that part (share_of): a worker's part of pass 2. tree: the venv's folder handles, when
    the caller holds them (its trace stamps through them); else the inventory's own.
    cow: the store shares by copy-on-write, so owners and modes do not split groups."""
    own = None
    if tree is None:
        tree = own = venv_tree(venv)
    walk = Listings(tree, trace)
    cache_links: Counter[str] = Counter()  # by the INSTALLER of their dist-info
    try:
        for site_packages in venv.site_packages:
            # '' for a --target folder: its RECORD paths are relative to the tree's root.
            base = "" if site_packages == venv.root else os.path.relpath(site_packages, venv.root)
            cache_links += yield from _site_packages(
                venv, walk, base, store_inodes, store_device, share, cow
            )
        for at in walk.leftovers:
            yield Leftover(at)
        yield from _cache_link_notices(cache_links)
    finally:
        if own is not None:
            own.close()


def _site_packages(
    venv: Venv,
    tree: Listings,
    base: str,
    store_inodes: set[int],
    store_device: int,
    share: tuple[int, int] | None,
    cow: bool,
) -> Generator[Item, None, Counter[str]]:
    """The items of one site-packages folder; returns how many symlinks with no digest
    (pdm's cache links) its distributions hold, by installer."""
    # pip lists every .pyc it compiled: a third of all RECORD lines, each of which
    # _classify drops as bytecode unless its path is unusual or lies in a folder of
    # per-install files.
    in_base = [*base.split(os.sep), "m.pyc"] if base else ["m.pyc"]
    plain_bytecode_skips = string_reason(in_base, None, False) == Reason.BYTECODE
    cache_links: Counter[str] = Counter()
    for dist_info in sorted(tree.subfolders(base)):
        if not dist_info.endswith(".dist-info"):
            continue
        rel = f"{base}/{dist_info}" if base else dist_info
        text = yield from _record(tree, rel)
        if text is None:
            continue
        record_path = tree.tree.path(f"{rel}/RECORD")
        dist = dist_info[: -len(".dist-info")]
        links = 0
        for entry in iter_record(text.splitlines()):
            if isinstance(entry, str):
                yield Skipped(record_path, Reason.MALFORMED_RECORD)
                yield BadInput(record_path, entry)
                continue
            if plain_bytecode_skips and _plain_bytecode(entry.path):
                continue  # what _classify would decide, without resolving the path
            item = _classify(
                venv, tree, base, entry, dist, store_inodes, store_device, share, cow=cow
            )
            if item is not None:
                links += isinstance(item, Skipped) and item.cache_link
                yield item
        if links:
            cache_links[_installer(tree, rel)] += links
    return cache_links


def _installer(tree: Listings, rel: str) -> str:
    """The INSTALLER of the dist-info folder rel ('' when it has none)."""
    try:
        return read_text("INSTALLER", 1024, dir_fd=tree.tree.fd(rel)).strip()
    except (OSError, UnicodeError):
        return ""


def _cache_link_notices(counts: Counter[str]) -> Iterator[Notice]:
    """One notice per installer of the symlinks that RECORD gives no digest for: pdm's
    install.cache links its cache's files into the venv, a normal install, not bad input."""
    for installer, count in sorted(counts.items()):
        if installer == "pdm":
            yield Notice(f"{count} symlinked files, installed by pdm's cache: not shared")
        else:
            by = f"installed by {installer!r}" if installer else "with no INSTALLER"
            yield Notice(f"{count} symlinked files with no digest in RECORD, {by}: not shared")


def _record(tree: Listings, rel: str) -> Generator[Item, None, str | None]:
    """The text of the RECORD in the dist-info folder rel, read through its handle; None
    (and why, as items) when there is none to use."""
    record_path = tree.tree.path(f"{rel}/RECORD")
    if tree.trace is not None:
        tree.trace.stamp(rel)  # RECORD made, removed or replaced
        tree.trace.stamp(f"{rel}/RECORD", may_be_absent=True)  # edited
    try:
        return read_text("RECORD", dir_fd=tree.tree.fd(rel))
    except FileNotFoundError:
        yield Skipped(record_path, Reason.MISSING_RECORD)
        yield BadInput(record_path, "no RECORD: this distribution's files are not shared")
    except OSError as exc:
        yield Skipped(record_path, Reason.MALFORMED_RECORD)
        yield BadInput(record_path, f"cannot read RECORD: {exc.strerror or exc}")
    return None


def _classify(
    venv: Venv,
    tree: Listings,
    base: str,
    entry: RecordEntry,
    dist: str,
    store_inodes: set[int],
    store_device: int,
    share: tuple[int, int] | None = None,
    *,
    cow: bool = False,
) -> Item | None:
    """The entry's classification; None for a RECORD line about a .pyc, since pycs are
    found beside their sources instead (uv does not list them, pip does)."""
    if entry.path.startswith("/"):
        return Skipped(entry.path, Reason.OUTSIDE_VENV)
    if entry.path.startswith(".") or "/." in entry.path or "//" in entry.path:
        rel = os.path.normpath(os.path.join(base, entry.path))  # '..', '.', '//' inside
    else:
        rel = f"{base}/{entry.path}" if base else entry.path  # normpath's, without its cost
    path = f"{venv.root}/{rel}"
    if rel == ".." or rel.startswith("../") or rel == ".":
        return Skipped(path, Reason.OUTSIDE_VENV)
    file_hash = entry.hash
    reason = string_reason(
        rel.split(os.sep),
        None if file_hash is None else file_hash.algorithm,
        file_hash is not None and file_hash.is_strong,
    )
    folder, _, name = rel.rpartition(os.sep)
    kind, ino = tree.lookup(folder, name) if reason is None else ("", 0)  # lists the folder
    if not tree.claim(rel):  # after the lookup: the claim is a bit of its listed entry
        return None if rel.endswith(".pyc") else Skipped(path, Reason.DUPLICATE_ENTRY)
    if reason is not None:
        if reason == Reason.NO_HASH and tree.lookup(folder, name)[0] == "l":
            return Skipped(path, Reason.SYMLINK, cache_link=True)
        return None if reason == Reason.BYTECODE else Skipped(path, reason)
    assert file_hash is not None
    if kind != "f":
        return Skipped(path, _KIND_REASON.get(kind, Reason.NOT_REGULAR))
    stored = ino in store_inodes and venv.device == store_device
    if (
        share is not None
        and not stored
        and entry.size is not None
        and share_of(entry.size, share[1]) != share[0]
    ):
        return None  # another part's: a Candidate's size is its RECORD size
    pycs = tree.pycs(folder, name)
    if pycs is None:
        return Skipped(path, Reason.PYCACHE_UNREADABLE)
    if entry.size == 0:
        return Skipped(path, Reason.ZERO_BYTES, pycs)
    at = At(tree.tree, rel)
    if stored and share is None:
        return Shared(at, ino, pycs)  # with shares: by the object's size, below
    return _by_stat(
        at, path, entry, file_hash, dist, pycs, store_inodes, store_device, share, cow=cow
    )


def _by_stat(
    at: At,
    path: str,
    entry: RecordEntry,
    file_hash: RecordHash,
    dist: str,
    pycs: tuple[Pyc, ...],
    store_inodes: set[int],
    store_device: int,
    share: tuple[int, int] | None,
    *,
    cow: bool,
) -> Item | None:
    """The classification of a recorded regular file from its lstat (through its
    folder's handle): a candidate, a shared file, or skipped."""
    try:
        st = at.lstat()
    except FileNotFoundError:
        return Skipped(path, Reason.MISSING)
    except FolderSwapped:
        return Skipped(path, Reason.CHANGED_DURING_SCAN)
    except OSError:
        return Skipped(path, Reason.UNREADABLE, pycs)
    if share is not None and share_of(st.st_size, share[1]) != share[0]:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Skipped(path, Reason.SYMLINK)
    if not stat.S_ISREG(st.st_mode):
        return Skipped(path, Reason.NOT_REGULAR)
    if st.st_ino in store_inodes and st.st_dev == store_device:
        return Shared(at, st.st_ino, pycs)
    if st.st_size == 0:
        reason = Reason.ZERO_BYTES
    elif entry.size is not None and st.st_size != entry.size:
        reason = Reason.CHANGED_SINCE_INSTALL
    elif st.st_dev != store_device:
        reason = Reason.OTHER_FILESYSTEM
    else:
        key = object_key(file_hash.algorithm, file_hash.digest, st, cow=cow)
        return Candidate(at, key, st, dist, pycs)
    return Skipped(path, reason, pycs)
