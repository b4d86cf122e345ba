"""What DST gets of each of SRC's distributions, file by file: shared with its store
object, copied (with the reason), written anew (scripts, RECORD, .pth files naming SRC) or
made again as a symlink. It reads SRC through its folder handles and changes nothing.

A file is shared when the scan just before proved it and made it (or found it) a store
object: `shared` says so from its stat (dedupe.clone.adopt), so no proof is repeated here.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..discovery import Venv
from ..hashing import digest_file, read_small
from ..inventory import dist_infos, string_reason
from ..listing import dirent_kind
from ..reasons import Reason
from ..records import RecordEntry, RecordError, parse_record
from ..tree import Tree, split
from .adopt import Shared
from .result import CopyReason, Written
from .scripts import rewrite_script

__all__ = ["Action", "Copy", "Plan", "Share", "Symlink", "Write", "plan_clone"]

_TEXT_LIMIT = 16 << 20  # a RECORD, script or .pth file larger than this is copied as is


@dataclass(frozen=True, slots=True)
class Share:
    rel: str  # venv-relative, the same in SRC and DST
    ino: int  # the inode planned: a store object (hardlinks), or what its clone reads
    st: os.stat_result | None  # its stat, where the share step needs it (reflinks)
    pyc: bool


@dataclass(frozen=True, slots=True)
class Copy:
    rel: str
    st: os.stat_result
    reason: CopyReason


@dataclass(frozen=True, slots=True)
class Write:
    rel: str
    data: bytes
    mode: int
    mtime_ns: int | None  # None: now
    kind: Written


@dataclass(frozen=True, slots=True)
class Symlink:
    rel: str
    target: str


Action = Share | Copy | Write | Symlink


@dataclass(slots=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    folders: dict[str, int] = field(default_factory=dict)  # SRC's st_mode, by rel
    distributions: int = 0
    problems: list[str] = field(default_factory=list)


def plan_clone(venv: Venv, dst_root: str, shared: Shared, aliases: tuple[str, ...] = ()) -> Plan:
    """The plan of DST (a clone of venv at dst_root) from SRC's RECORDs and folders.
    aliases: other absolute paths of SRC's root (through symlinks) that its scripts and
    .pth files may name, as pip names the venv by the path it was run as."""
    plan = Plan()
    with Tree(venv.root, (venv.device, venv.ino) if venv.ino else None) as tree:
        planner = _Planner(tree, (venv.root, *aliases), dst_root, shared, plan)
        for site_packages in venv.site_packages:
            sp_rel = os.path.relpath(site_packages, venv.root)
            for name in dist_infos(site_packages):
                planner.distribution(sp_rel, name)
            planner.loose_pth_files(sp_rel)
        planner.pycs()
    return plan


class _Planner:
    def __init__(
        self,
        tree: Tree,
        src_roots: tuple[str, ...],
        dst_root: str,
        shared: Shared,
        plan: Plan,
    ) -> None:
        self.tree = tree
        self.src_root = src_roots[0]
        self.src_roots = tuple(dict.fromkeys(src_roots))
        self.dst_root = dst_root
        self.shared = shared
        self.plan = plan
        self.seen: set[str] = set()
        self.sources: dict[str, set[str]] = {}  # folder -> its .py stems, for their pycs
        # folder -> {name: (inode, kind)}: each folder of SRC listed once, its files known
        # by the d_ino and d_type of its listing, so that a shared file takes no stat.
        self.listings: dict[str, dict[str, tuple[int, str]] | None] = {}
        self.old_bins = tuple(os.path.join(root, "bin") for root in self.src_roots)
        self.new_bin = os.path.join(dst_root, "bin")

    def distribution(self, sp_rel: str, dist_info: str) -> None:
        info_rel = f"{sp_rel}/{dist_info}"
        try:
            text = read_small("RECORD", _TEXT_LIMIT, self.tree.fd(info_rel))
        except OSError:
            return  # no RECORD: a legacy install, left out as a scan leaves it
        original: bytes | None = text
        try:
            entries = parse_record(text.decode("utf-8", "surrogateescape").splitlines())
        except RecordError as exc:
            self.plan.problems.append(f"{self.tree.path(info_rel)}/RECORD: {exc}")
            entries = exc.entries
            original = None  # DST's RECORD holds the lines that parsed
        self.plan.distributions += 1
        digests: dict[str, bytes] = {}
        for entry in entries:
            rel = self._rel(sp_rel, entry.path)
            if rel is None or rel in self.seen or rel == f"{info_rel}/RECORD":
                continue
            self.seen.add(rel)
            written = self._file(rel, entry)
            if written is not None:
                digests[entry.path] = written
        self._record(info_rel, entries, digests, original)

    def _rel(self, sp_rel: str, path: str) -> str | None:
        """The venv-relative path of a RECORD path, None when it leads out of SRC."""
        normal = "./" not in path and "//" not in path and not path.endswith((".", "/"))
        if path and normal and not path.startswith("/"):
            return f"{sp_rel}/{path}"  # what normpath would give: it has nothing to do
        if os.path.isabs(path):
            full = os.path.normpath(path)
            for root in self.src_roots:
                if full.startswith(root + os.sep):
                    return full[len(root) + 1 :]
            return None
        rel = os.path.normpath(f"{sp_rel}/{path}")
        return None if rel.startswith(("..", "/")) or rel == "." else rel

    def _listing(self, folder: str) -> dict[str, tuple[int, str]] | None:
        """The names in SRC's folder with their inode and kind (listing.dirent_kind: 'f' a
        regular file, 'd' a folder, 'l' a symlink, 'o' anything else); None when it is no
        folder. The kinds are read at once, while the folder's handle is the one the
        listing used."""
        if folder in self.listings:
            return self.listings[folder]
        listing: dict[str, tuple[int, str]] | None = None
        try:
            entries = self.tree.scandir(folder)
        except OSError:
            pass
        else:
            listing = {e.name: (e.inode(), dirent_kind(e)) for e in entries}
        self.listings[folder] = listing
        return listing

    def _stat(self, rel: str) -> os.stat_result:
        return self.tree.lstat(rel)

    def _file(self, rel: str, entry: RecordEntry) -> bytes | None:
        """Plan one RECORD entry; the bytes DST's file will hold when they are new."""
        folder, name = split(rel)
        listing = self._listing(folder)
        found = listing.get(name) if listing is not None else None
        if found is None:
            return None  # missing in SRC: missing in DST too
        ino, kind = found
        self._folders(rel)
        if kind == "l":
            self._symlink(rel)
            return None
        if kind != "f":
            return None
        if name.endswith(".py"):
            self.sources.setdefault(folder, set()).add(name[:-3])
        if name.endswith((".pyc", ".pyo")):
            self.seen.discard(rel)  # found beside its source, with the pycs RECORD omits
            return None
        parts = rel.split("/")
        algorithm = entry.hash.algorithm if entry.hash else None
        strong = entry.hash.is_strong if entry.hash else False
        reason = string_reason(parts, algorithm, strong)
        try:
            if reason is Reason.PER_INSTALL:
                return self._per_install(rel, self._stat(rel), parts)
            if entry.hash is not None:
                lazy = _LazyStat(self.tree, rel)
                if self.shared(self.tree.fd(folder), name, ino, lazy, entry.hash):
                    self.plan.actions.append(Share(rel, ino, lazy.known, pyc=False))
                    return None
            st = self._stat(rel)
        except FileNotFoundError:
            return None  # removed since the listing: missing in DST too
        self.plan.actions.append(Copy(rel, st, self._why_copied(rel, st, entry, reason)))
        return None

    def _why_copied(
        self, rel: str, st: os.stat_result, entry: RecordEntry, reason: Reason | None
    ) -> CopyReason:
        if st.st_size == 0:
            return CopyReason.ZERO_BYTES
        if reason is Reason.NO_HASH or entry.hash is None:
            return CopyReason.NO_HASH
        if reason is not None:
            return CopyReason.WEAK_HASH
        folder, name = split(rel)
        try:
            digest = digest_file(name, entry.hash.algorithm, st, dir_fd=self.tree.fd(folder))
        except Exception:  # unreadable or changed meanwhile: not proven either way
            return CopyReason.CHANGED_SINCE_INSTALL
        if digest != entry.hash.digest:
            return CopyReason.CHANGED_SINCE_INSTALL
        return CopyReason.NOT_IN_STORE

    def _per_install(self, rel: str, st: os.stat_result, parts: list[str]) -> bytes | None:
        name = parts[-1]
        data = self._read(rel, st)
        new: bytes | None = None
        kind = Written.ADJUSTED
        if data is not None and parts[0] == "bin":
            new, kind = rewrite_script(data, self.old_bins, self.new_bin), Written.SCRIPT
        elif data is not None and (name.endswith(".pth") or name.startswith("__editable__")):
            new = self._adjusted(data)
        if new is None:
            self.plan.actions.append(Copy(rel, st, CopyReason.PER_INSTALL))
            return None
        mtime = st.st_mtime_ns if kind is Written.ADJUSTED else None
        self.plan.actions.append(Write(rel, new, stat.S_IMODE(st.st_mode), mtime, kind))
        return new

    def _adjusted(self, data: bytes) -> bytes | None:
        """The text with SRC's root replaced by DST's, None when it names no SRC path."""
        new = os.fsencode(self.dst_root)
        found = data
        for root in self.src_roots:
            old = os.fsencode(root)
            found = found.replace(old + b"/", new + b"/").replace(old + b"\n", new + b"\n")
        return None if found == data else found

    def _read(self, rel: str, st: os.stat_result) -> bytes | None:
        if st.st_size > _TEXT_LIMIT:
            return None
        folder, name = split(rel)
        try:
            return read_small(name, _TEXT_LIMIT, self.tree.fd(folder))
        except OSError:
            return None

    def _symlink(self, rel: str) -> None:
        folder, name = split(rel)
        target = os.readlink(name, dir_fd=self.tree.fd(folder))
        for root in self.src_roots:
            if target.startswith(root + os.sep):
                target = self.dst_root + target[len(root) :]
                break
        self.plan.actions.append(Symlink(rel, target))

    def _folders(self, rel: str) -> None:
        folder = split(rel)[0]
        while folder and folder not in self.plan.folders:
            self.plan.folders[folder] = self.tree.folder_mode(folder)
            folder = split(folder)[0]

    def _record(
        self,
        info_rel: str,
        entries: list[RecordEntry],
        new: dict[str, bytes],
        original: bytes | None,
    ) -> None:
        """DST's RECORD: paths into SRC made paths into DST, the hash and size of each
        file written anew; every other line as it was (a copied file changed since
        install keeps its recorded hash, so DST too knows it was edited). A RECORD with
        no absolute path and no file written anew is SRC's, byte for byte (original)."""
        rel = f"{info_rel}/RECORD"
        if original is not None and not new and not any(e.path.startswith("/") for e in entries):
            st = self.tree.lstat(rel)
            mode = stat.S_IMODE(st.st_mode)
            self.plan.actions.append(Write(rel, original, mode, None, Written.RECORD))
            self._folders(rel)
            return
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for entry in entries:
            path = entry.path
            for root in self.src_roots:
                if os.path.isabs(path) and path.startswith(root + os.sep):
                    path = self.dst_root + path[len(root) :]
                    break
            digest = str(entry.hash) if entry.hash else ""
            size = "" if entry.size is None else str(entry.size)
            data = new.get(entry.path)
            if data is not None:
                algorithm = entry.hash.algorithm if entry.hash else "sha256"
                digest = f"{algorithm}={_b64(algorithm, data)}"
                size = str(len(data))
            writer.writerow([path, digest, size])
        st = self.tree.lstat(rel)
        data = out.getvalue().encode("utf-8", "surrogateescape")
        self.plan.actions.append(Write(rel, data, stat.S_IMODE(st.st_mode), None, Written.RECORD))
        self._folders(rel)

    def loose_pth_files(self, sp_rel: str) -> None:
        """.pth files that no RECORD lists (virtualenv's, a user's own): they are how the
        venv finds code, so DST gets them, adjusted where they name SRC."""
        for entry in self.tree.scandir(sp_rel):
            rel = f"{sp_rel}/{entry.name}"
            if entry.name.endswith(".pth") and rel not in self.seen:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    self.seen.add(rel)
                    self._folders(rel)
                    self._per_install(rel, st, rel.split("/"))

    def pycs(self) -> None:
        """The pycs beside the sources planned, listed in RECORD (pip) or not (uv, and
        those Python wrote since): shared where the scan shared them."""
        for folder, stems in sorted(self.sources.items()):
            for rel, ino in self._pycache(folder, stems):
                self._folders(rel)
                cache, name = split(rel)
                lazy = _LazyStat(self.tree, rel)
                try:
                    if self.shared(self.tree.fd(cache), name, ino, lazy, None):
                        self.plan.actions.append(Share(rel, ino, lazy.known, pyc=True))
                    else:
                        st = self._stat(rel)
                        self.plan.actions.append(Copy(rel, st, CopyReason.PYC_NOT_IN_STORE))
                except FileNotFoundError:
                    continue  # removed since the listing (Python rewrote it): left out

    def _pycache(self, folder: str, stems: set[str]) -> Iterator[tuple[str, int]]:
        cache = f"{folder}/__pycache__" if folder else "__pycache__"
        listing = self._listing(cache)
        if listing is None:
            return
        for name in sorted(listing):
            ino, kind = listing[name]
            if kind == "f" and name.endswith(".pyc") and name.split(".")[0] in stems:
                yield f"{cache}/{name}", ino


class _LazyStat:
    """A file's stat, taken the first time it is asked for (a hardlink store's test needs
    the inode only, which the listing gave)."""

    __slots__ = ("_rel", "_tree", "known")

    def __init__(self, tree: Tree, rel: str) -> None:
        self._tree = tree
        self._rel = rel
        self.known: os.stat_result | None = None

    def __call__(self) -> os.stat_result:
        if self.known is None:
            self.known = self._tree.lstat(self._rel)
        return self.known


def _b64(algorithm: str, data: bytes) -> str:
    digest = hashlib.new(algorithm, data).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
