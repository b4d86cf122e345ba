"""What an earlier scan found in a venv, kept in the store so an unchanged venv is not walked again.

Pass 1 of a scan learns, per venv, counts (files, skips by reason, shared files and pycs)
and the census key of every candidate, from RECORD files and folder listings. All of that
follows from the venv's folders and RECORD files alone, except for what lives in a file's
own inode (content, mode, owner), which pass 2 proves afresh before any link anyway.

So a memo keeps pass 1's result with a stamp of each folder listed and each RECORD read,
(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns), taken before the listing or the read.
Creating, removing or renaming anything in a folder moves its ctime (and a RECORD
rewritten in place moves its own), so when every stamp still matches, pass 1 would find
what the memo says; the venv then costs one lstat per folder.

A stamp is trusted only when its ctime is older than the filesystem's clock read just
before it was taken (the store's lock file is touched for that): a change in the same
clock tick as the stamp could otherwise leave the ctime as it was ("racy git").

A run that links in a venv moves its folders' stamps: it renews the memo (renew) from
what it changed instead of walking the venv again. Each folder's memo keeps a sum of a
keyed hash of its listing's entries (dedupe.listing.listing_sum); the folders whose
stamps moved are listed again, after their new stamps, and the memo is kept only when
their sums moved by exactly what the run's own replacements account for.

What a memo cannot see: a change inside a file's own inode that leaves its folder alone
(an in-place edit or a chmod of an installed file), until that folder changes or
`scan --full`; and a change that coincides with the system clock being set back. Either
can only leave the counts stale or a link undone: nothing is linked on a memo's word,
since pass 2 walks the venv and proves every file it links. Memos
live in STORE/scan-cache and are written only by real runs under the store's lock; gc
forgets those of venvs that are gone, verify --repair all of them. This module writes
nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import xxhash

from ._version import __version__
from .discovery import Venv
from .listing import dirent_kind, listing_sum
from .quiet import scandir_quietly
from .store import CACHE_DIR, TMP_PREFIX, Store

MEMO_FORMAT = 2  # 2: with the listing sums of the folders

# One candidate: its census key (16 bytes), inode number, and whether it had other links.
CANDIDATE = struct.Struct("<16sQ?")

_MASK = (1 << 64) - 1

Stamp = tuple[str, int, int, int, int, int]  # (venv-relative path, dev, ino, size, mtime, ctime)
_STAMP_FIELDS = struct.Struct("<QQqqq")  # a Stamp's numbers


class Trace:
    """The stamps one inventory of a venv took, in the order it took them."""

    __slots__ = ("root", "lstat", "_rels", "_fields", "sums", "complete")

    def __init__(self, root: str, lstat: Callable[[str], os.stat_result]) -> None:
        self.root = root
        self.lstat = lstat  # of a venv-relative path, through the walk's folder handles
        # Each stamp's path, and its five numbers packed: a walk holds a stamp of every
        # folder of the venv, and a tuple of five ints would take five times the bytes.
        self._rels: list[str] = []
        self._fields = bytearray()
        self.sums: dict[str, int] = {}  # folder -> its listing.listing_sum, once listed
        self.complete = True  # False when something could not be stamped: no memo then

    def stamp(self, rel: str, may_be_absent: bool = False) -> None:
        """Stamp the venv-relative path rel ('' is the venv root). may_be_absent: a
        missing file needs no stamp, since its folder's stamp shows it appear."""
        try:
            st = self.lstat(rel)
        except FileNotFoundError:
            self.complete = self.complete and may_be_absent
            return
        except OSError:
            self.complete = False
            return
        self._rels.append(rel)
        self._fields += _STAMP_FIELDS.pack(*_stamp(rel, st)[1:])

    @property
    def stamps(self) -> list[Stamp]:
        fields = _STAMP_FIELDS.iter_unpack(self._fields)
        return [(rel, *f) for rel, f in zip(self._rels, fields, strict=True)]

    def listed(self, rel: str, digest: int) -> None:
        self.sums[rel] = digest


def _stamp(rel: str, st: os.stat_result) -> Stamp:
    return (rel, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class Memo:
    """Pass 1's result for one venv."""

    scanned: int
    eligible: int
    shared: int
    pyc_scanned: int
    pyc_shared: int
    pyc_work: bool
    skipped: dict[str, int]
    warnings: tuple[tuple[str, str], ...]  # (path, message)
    candidates: bytes  # CANDIDATE records
    notes: tuple[str, ...] = ()  # what the report says of the venv that is no problem

    def iter_candidates(self) -> Iterator[tuple[bytes, int, bool]]:
        """(census key, inode number, had other links) of each candidate."""
        return CANDIDATE.iter_unpack(self.candidates)


def _join(root: str, rel: str) -> str:
    return f"{root}/{rel}" if rel else root


def _name(venv: Venv) -> str:
    return xxhash.xxh3_64_hexdigest(os.fsencode(venv.root)) + ".json"


def _identity(venv: Venv, share_pyc: bool, cow: bool) -> dict[str, Any]:
    # The tool's version too: another release may classify files otherwise.
    return {
        "format": MEMO_FORMAT,
        "version": __version__,
        "root": venv.root,
        "kind": venv.kind.value,
        "device": venv.device,
        "site_packages": list(venv.site_packages),
        "share_pyc": share_pyc,
        "cow": cow,  # copy-on-write keys leave owners and modes out
        # Another interpreter build: its pycs belong to other groups.
        "build": None if venv.build is None else [*venv.build.version, venv.build.ident],
    }


class Memos:
    """The memos of one store."""

    def __init__(self, store: Store, cow: bool = False) -> None:
        self.store = store
        self.cow = cow  # the store shares by copy-on-write: its candidates' keys say so
        self.folder = os.path.join(store.path, CACHE_DIR)

    def load(self, venv: Venv, share_pyc: bool) -> Memo | None:
        """The venv's memo when every stamp in it still matches; None otherwise."""
        data = self._stored(venv, share_pyc)
        if data is None:
            return None
        try:
            # By path, not through folder handles (a third of the system calls): every
            # folder on the way is stamped too, so a folder swapped for a symlink fails
            # its own stamp whatever its files' stamps find behind it.
            for rel, *fields in data["stamps"]:
                if _stamp(rel, os.lstat(_join(venv.root, rel)))[1:] != tuple(fields):
                    return None
            return _memo(data["memo"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, venv: Venv, share_pyc: bool, trace: Trace, clock: int, memo: Memo) -> bool:
        """Keep the memo, unless a stamp could hide a later change: a ctime not older
        than clock (the filesystem's time read before the trace began). True if kept."""
        if not trace.complete:
            self.forget(venv)
            return False
        return self._keep(venv, share_pyc, trace.stamps, trace.sums, clock, memo)

    def renew(
        self, venv: Venv, share_pyc: bool, delta: int, update: Callable[[Memo], Memo]
    ) -> bool:
        """Keep a new memo of a venv this run changed after its memo was kept, without
        walking it again: the old memo's stamps are taken again, and each folder whose
        stamp moved is listed again. It is kept only when the listings add up to what
        they were plus delta, the change that this run's own replacements make to their
        listing sums (dedupe.listing.entry_sum): then nothing but this run changed what
        the folders hold. update makes the new memo of the old. True if kept."""
        data = self._stored(venv, share_pyc)
        if data is None:
            return False
        try:
            clock = self.store.clock_ns()  # before the first stamp, as for a walk
            before: dict[str, int] = data["sums"]
            stamps, sums = _restamp(venv.root, data["stamps"], before)
            memo = update(_memo(data["memo"]))
        except (OSError, ValueError, KeyError, TypeError):
            self.forget(venv)
            return False
        if (sum(sums.values()) - sum(before.values()) - delta) & _MASK:
            self.forget(venv)  # someone else changed a folder: walk it next time
            return False
        return self._keep(venv, share_pyc, stamps, sums, clock, memo)

    def _stored(self, venv: Venv, share_pyc: bool) -> dict[str, Any] | None:
        """The venv's memo file as it was written, when whole and of these settings."""
        try:
            with open(os.path.join(self.folder, _name(venv)), "rb") as f:
                raw = f.read()
        except OSError:
            return None
        check, _, body = raw.partition(b"\n")
        if check.decode("ascii", "replace") != xxhash.xxh3_64_hexdigest(body):
            return None  # torn or damaged: walk the venv as if there were none
        try:
            data = json.loads(body)
            if data["identity"] != _identity(venv, share_pyc, self.cow):
                return None
        except (ValueError, KeyError, TypeError):
            return None
        return data if isinstance(data, dict) else None

    def _keep(
        self,
        venv: Venv,
        share_pyc: bool,
        stamps: list[Stamp],
        sums: dict[str, int],
        clock: int,
        memo: Memo,
    ) -> bool:
        if any(s[5] >= clock for s in stamps):
            self.forget(venv)
            return False
        body = _body(_identity(venv, share_pyc, self.cow), stamps, sums, memo)
        digest = xxhash.xxh3_64()
        for part in body:
            digest.update(part)
        final = os.path.join(self.folder, _name(venv))
        tmp = os.path.join(self.folder, f"{TMP_PREFIX}{os.getpid()}-{_name(venv)}")
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(digest.hexdigest().encode("ascii") + b"\n")
                f.writelines(body)
            os.replace(tmp, final)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False  # losing a memo costs the next run a walk, nothing else
        return True

    def forget(self, venv: Venv) -> None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, _name(venv)))


def _body(
    identity: dict[str, Any], stamps: list[Stamp], sums: dict[str, int], memo: Memo
) -> list[bytes]:
    """A memo file's JSON object (identity, stamps, sums, memo) in parts, none a copy of
    another: the body of a venv of ten thousand files is a megabyte, and made whole,
    encoded and prefixed, its copies were the peak of the walk that kept it."""
    fields = asdict(memo)
    del fields["candidates"]  # the largest field, encoded as it is
    return [
        b'{"identity":',
        _json(identity),
        b',"stamps":',
        _json(stamps),
        b',"sums":',
        _json(sums),
        b',"memo":{"candidates":"',
        base64.b64encode(memo.candidates),
        b'",',
        _json(fields)[1:],  # its other fields, and the closing brace
        b"}",
    ]


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _memo(fields: dict[str, Any]) -> Memo:
    candidates = base64.b64decode(fields["candidates"], validate=True)
    if len(candidates) % CANDIDATE.size:
        raise ValueError("a torn candidate record")
    return Memo(
        fields["scanned"],
        fields["eligible"],
        fields["shared"],
        fields["pyc_scanned"],
        fields["pyc_shared"],
        fields["pyc_work"],
        fields["skipped"],
        tuple((path, message) for path, message in fields["warnings"]),
        candidates,
        tuple(str(note) for note in fields["notes"]),
    )


def _restamp(
    root: str, stamps: list[list[Any]], sums: dict[str, int]
) -> tuple[list[Stamp], dict[str, int]]:
    """The stamps taken again, and the listing sums with each folder whose stamp moved
    listed again (after its new stamp: a change after the listing moves the stamp).
    OSError when a stamped file moved (RECORD) or a folder that was never listed did."""
    taken: dict[str, Stamp] = {}  # a folder stamped twice (it holds a RECORD): once
    new_sums = dict(sums)
    for rel, *fields in stamps:
        if rel in taken:
            continue
        st = os.lstat(_join(root, rel))
        taken[rel] = _stamp(rel, st)
        if taken[rel][1:] == tuple(fields):
            continue
        if rel not in sums or not stat.S_ISDIR(st.st_mode):
            raise OSError(f"{rel!r} changed")
        new_sums[rel] = _listed_again(root, rel)
    return [taken[rel] for rel, *_ in stamps], new_sums


def _listed_again(root: str, rel: str) -> int:
    """A folder's listing_sum, listed by path (every folder on the way is stamped)."""
    with scandir_quietly(_join(root, rel)) as it:
        return listing_sum(rel, ((e.name, dirent_kind(e), e.inode()) for e in it))


def drop_all(store: Store) -> None:
    """Forget every memo of the store: verify --repair moves objects out of the store,
    so files that memos count as shared may not be any more."""
    shutil.rmtree(os.path.join(store.path, CACHE_DIR), ignore_errors=True)


def prune(store: Store) -> int:
    """Forget the memos of venvs that are gone (for gc); how many were forgotten."""
    folder = os.path.join(store.path, CACHE_DIR)
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    gone = 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                root = json.loads(f.read().partition(b"\n")[2])["identity"]["root"]
            if os.path.isfile(os.path.join(root, "pyvenv.cfg")):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or damaged: useless to the next scan too
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            gone += 1
    return gone
