"""How the store names its objects (the keys of source and pyc objects) and its own files."""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "CACHE_DIR",
    "COW_OBJECT_MODE",
    "DEFAULT_STORE_NAME",
    "FORMAT",
    "JOURNAL_DIR",
    "TMP_PREFIX",
    "TRASH_DIR",
    "ObjectKey",
    "PycKey",
    "interned",
    "object_key",
    "parse_object_name",
    "parse_pyc_name",
]


FORMAT = "venv-dedupe store 1\n"
# Prefix of every temp name we create, in venvs and in the store; the next run removes
# any that a killed run left behind.
TMP_PREFIX = ".venv-dedupe-tmp-"
# The mode of a copy-on-write object (named 0.0.0): the store's own read-only copy.
COW_OBJECT_MODE = 0o444
DEFAULT_STORE_NAME = ".venv-dedupe-store"
_BUILD = re.compile(r"[0-9a-f]{16}")
CACHE_DIR = "scan-cache"
TRASH_DIR = "trash"
JOURNAL_DIR = "journal"

H = TypeVar("H", bound=Hashable)
_INTERNED: dict[Hashable, Hashable] = {}


def interned(value: H) -> H:
    """One object for each value of the few that keys repeat (modes, owners past 256,
    magic numbers): a scan holds a key per distinct file, and each would hold its own."""
    return _INTERNED.setdefault(value, value)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """What may share one inode: same content (by its recorded digest) and same metadata."""

    algorithm: str
    digest: bytes
    uid: int
    gid: int
    mode: int  # stat.S_IMODE bits; 0 with uid and gid 0: a copy-on-write object

    @property
    def cow(self) -> bool:
        """A copy-on-write object: any file with its content may share its data."""
        return (self.uid, self.gid, self.mode) == (0, 0, 0)

    def relpath(self, generation: int) -> str:
        hexdigest = self.digest.hex()
        name = f"{hexdigest[2:]}.{self.uid}.{self.gid}.{self.mode:o}.{generation}"
        return f"objects/{self.algorithm}/{hexdigest[:2]}/{name}"


def object_key(algorithm: str, digest: bytes, st: os.stat_result, *, cow: bool) -> ObjectKey:
    """The key of a venv file with this recorded digest. A hardlink shares the inode, so
    its owner, group and mode are part of what may share; a copy-on-write object shares
    data blocks only (each file keeps its own inode), so they are not: 0, 0, 0."""
    algorithm = sys.intern(algorithm)  # read afresh from each RECORD line or spool row
    if cow:
        return ObjectKey(algorithm, digest, 0, 0, 0)
    uid, gid, mode = interned(st.st_uid), interned(st.st_gid), interned(stat.S_IMODE(st.st_mode))
    return ObjectKey(algorithm, digest, uid, gid, mode)


def parse_object_name(algorithm: str, shard: str, name: str) -> tuple[ObjectKey, int] | None:
    """Inverse of ObjectKey.relpath; None for anything that is not an object name."""
    parts = name.split(".")
    if len(parts) != 5:
        return None
    rest, uid, gid, mode, generation = parts
    try:
        digest = bytes.fromhex(shard + rest)
        owner = interned(int(uid)), interned(int(gid)), interned(int(mode, 8))
        return ObjectKey(sys.intern(algorithm), digest, *owner), int(generation)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, order=True, kw_only=True)
class PycKey:
    """What may share one pyc inode: the same source object (its generation fixes the
    mtime a timestamp pyc records), interpreter build, magic, flags, cache tag and
    optimisation level, and the pyc's own owner, group and permission bits."""

    source: ObjectKey
    source_generation: int
    suffix: str  # cache tag and optimisation level: "cpython-311" or "cpython-311.opt-1"
    magic: bytes
    flags: int
    build: str  # dedupe.interpreter.Build.ident of the venv's interpreter
    uid: int
    gid: int
    mode: int

    @property
    def cow(self) -> bool:
        """A pyc object of a copy-on-write store (its source's key says so)."""
        return self.source.cow

    def relpath(self, generation: int) -> str:
        src = self.source
        hexdigest = src.digest.hex()
        name = (
            f"{hexdigest[2:]}.{src.uid}.{src.gid}.{src.mode:o}.{self.source_generation}."
            f"{self.suffix.replace('.', '+')}.{self.magic.hex()}.{self.flags}."
            f"{self.build}.{self.uid}.{self.gid}.{self.mode:o}.{generation}"
        )
        return f"pyc/{src.algorithm}/{hexdigest[:2]}/{name}"


def parse_pyc_name(algorithm: str, shard: str, name: str) -> tuple[PycKey, int] | None:
    """Inverse of PycKey.relpath; None for anything that is not a pyc object name."""
    parts = name.split(".")
    if len(parts) != 13:
        return None
    source = parse_object_name(algorithm, shard, ".".join(parts[:5]))
    if source is None:
        return None
    suffix, magic, flags, build, uid, gid, mode, generation = parts[5:]
    if not _BUILD.fullmatch(build):
        return None
    try:
        key = PycKey(
            source=source[0],
            source_generation=source[1],
            suffix=sys.intern(suffix.replace("+", ".")),
            magic=interned(bytes.fromhex(magic)),
            flags=int(flags),
            build=sys.intern(build),
            uid=interned(int(uid)),
            gid=interned(int(gid)),
            mode=interned(int(mode, 8)),
        )
        return key, int(generation)
    except ValueError:
        return None
