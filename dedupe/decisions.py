"""What the planner decides for a file (the actions an executor carries out, and the
outcomes it does not), and what an executor tells it back."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .hashing import fingerprint_ino
from .reasons import Reason
from .store import ObjectKey
from .tree import At

__all__ = [
    "Adopt",
    "AlreadyShared",
    "ClonePyc",
    "CreatePyc",
    "Decision",
    "Link",
    "Observed",
    "Refused",
    "RewritePyc",
    "SourceObject",
    "Unique",
]


@dataclass(frozen=True, slots=True)
class Adopt:
    """Make the candidate's own inode the store object (a new link; frees nothing). Where
    the store shares by copy-on-write: make the object a clone of the candidate's data,
    proven against key's recorded digest once cloned (none for a pyc)."""

    at: At
    st: os.stat_result
    object_path: str
    key: ObjectKey | None = None

    @property
    def path(self) -> str:
        return self.at.path


@dataclass(frozen=True, slots=True)
class Link:
    """Replace the candidate by a link to the object; frees its inode if this was its last name."""

    at: At
    st: os.stat_result
    object_path: str
    object_ino: int
    frees: bool

    @property
    def path(self) -> str:
        return self.at.path


@dataclass(frozen=True, slots=True)
class CreatePyc:
    """Write a new pyc object: a venv's valid pyc, its header pointing at the source object.
    Costs the blocks of one pyc; every venv linked to it afterwards frees its own."""

    object_path: str
    data: bytes
    at: At  # the venv pyc it is made from: its owner, mode and extended attributes
    st: os.stat_result  # that pyc's stat: owner, group, mode, blocks


@dataclass(frozen=True, slots=True)
class RewritePyc:
    """Give a venv its own pyc with the header pointing at the (new) source inode."""

    at: At
    st: os.stat_result
    data: bytes

    @property
    def path(self) -> str:
        return self.at.path


@dataclass(frozen=True, slots=True)
class ClonePyc:
    """Copy-on-write: replace a venv's pyc by a clone of the group's pyc object, whole
    (header empty: the object is valid for every venv's source), or with the venv pyc's
    own 16-byte header written over the object's, when every block but the first is the
    object's. The old pyc's blocks are freed (the planner asks for this only of a pyc with
    one name and no shared blocks)."""

    at: At
    st: os.stat_result
    object_path: str
    header: bytes

    @property
    def path(self) -> str:
        return self.at.path


@dataclass(frozen=True, slots=True)
class SourceObject:
    """The store object a venv's source file is (or is about to be) linked to."""

    key: ObjectKey
    generation: int
    mtime_ns: int
    size: int


@dataclass(frozen=True, slots=True)
class Unique:
    """No other copy to share with: left as it is, never read."""


@dataclass(frozen=True, slots=True)
class AlreadyShared:
    path: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The candidate's bytes could not be proven, or its object is unusable."""

    path: str
    reason: Reason
    error: str | None = None  # set when this is an error, not an ordinary skip


@dataclass(frozen=True, slots=True)
class Observed:
    """A store object right after the executor gave it a name or wrote it."""

    fingerprint: bytes | None  # hashing.fingerprint of its lstat; None: it could not be read
    new_ino: int | None = None  # a pyc object just written: its inode number

    def ino(self) -> int | None:
        """The object's inode number, when it could be read."""
        return None if self.fingerprint is None else fingerprint_ino(self.fingerprint)


Decision = Adopt | Link | Unique | AlreadyShared | Refused | CreatePyc | RewritePyc | ClonePyc
