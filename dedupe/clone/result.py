"""What a clone returns: why files were copied instead of shared, and the frozen result."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["CloneResult", "CopiedFile", "CopyReason", "Written"]


class CopyReason(str, Enum):
    """Why a file of SRC is copied into DST, not shared with its store object. Its value
    is the key of the report's counts (text and JSON)."""

    PER_INSTALL = "per-install"  # INSTALLER, REQUESTED, direct_url.json, a .pth naming no SRC path
    NO_HASH = "no-hash"
    WEAK_HASH = "weak-hash"
    ZERO_BYTES = "zero-bytes"
    CHANGED_SINCE_INSTALL = "changed-since-install"
    NOT_IN_STORE = "not-in-store"  # proven, but the scan kept it private (see its skips)
    PYC_NOT_IN_STORE = "pyc-not-in-store"  # stale, hash-based, another interpreter's, ...
    SYMLINK = "symlink"  # made again as a symlink, never followed

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    CopyReason.PER_INSTALL: "written per install, kept as they are (INSTALLER, REQUESTED, "
    "direct_url.json, ...)",
    CopyReason.NO_HASH: "no hash in RECORD: cannot be proven",
    CopyReason.WEAK_HASH: "weak or unknown hash in RECORD: cannot be proven",
    CopyReason.ZERO_BYTES: "empty files",
    CopyReason.CHANGED_SINCE_INSTALL: "changed since install (bytes differ from RECORD)",
    CopyReason.NOT_IN_STORE: "proven, but kept private by the scan (see its skips)",
    CopyReason.PYC_NOT_IN_STORE: "pycs the scan did not share (stale, hash-based, ...)",
    CopyReason.SYMLINK: "symlinks, made again (never followed)",
}


class Written(str, Enum):
    """The files made anew for DST, by what they are."""

    SCRIPT = "script"  # a console script, DST's interpreter in its shebang
    RECORD = "record"  # hashes and sizes of what DST holds
    ADJUSTED = "adjusted"  # a .pth file or editable finder that named SRC, naming DST

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class CopiedFile:
    path: str  # DST's path
    reason: CopyReason


@dataclass(frozen=True, slots=True, kw_only=True)
class CloneResult:
    dry_run: bool
    src: str
    dst: str
    link_mode: str  # of the store: "hardlink" or "reflink"
    store: str
    distributions: int
    files_linked: int  # sources and data shared with their store object
    pycs_linked: int
    files_copied: dict[str, int]  # by CopyReason value
    copied: tuple[CopiedFile, ...]  # each copied file, with its reason
    files_written: dict[str, int]  # by Written value
    adopted: int  # SRC's files (pycs too) that became store objects first, as a scan does
    bytes_added: int  # allocated bytes DST adds to the disk: what it does not share
    store_bytes_added: int  # the store's new folders (adopting SRC's files)
    seconds: float
    errors: tuple[str, ...] = ()
