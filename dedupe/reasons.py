"""Why a file or a pyc was left as it is: every skip reason once, with its label."""

from __future__ import annotations

from enum import Enum

__all__ = ["Reason"]


class Reason(str, Enum):
    """A skip reason. Its value is the key of the report's `skipped` counts (in text and
    JSON, and in the memos a scan keeps), so values never change once released."""

    # Source files, by what RECORD and the path alone say.
    PER_INSTALL = "per-install"
    BYTECODE = "bytecode"  # a RECORD line of a pyc: found beside its source instead
    NO_HASH = "no-hash"
    WEAK_HASH = "weak-hash"
    UNKNOWN_HASH = "unknown-hash"
    OUTSIDE_VENV = "outside-venv"
    DUPLICATE_ENTRY = "duplicate-entry"
    MALFORMED_RECORD = "malformed-record"
    MISSING_RECORD = "missing-record"
    # Source files, by what is on disk.
    ZERO_BYTES = "zero-bytes"
    SYMLINK = "symlink"
    NOT_REGULAR = "not-regular-file"
    MISSING = "missing"
    UNREADABLE = "unreadable"
    OTHER_FILESYSTEM = "other-filesystem"
    CHANGED_SINCE_INSTALL = "changed-since-install"
    CHANGED_DURING_SCAN = "changed-during-scan"
    PYCACHE_UNREADABLE = "pycache-unreadable"
    PYCACHE_READ_ONLY = "pycache-read-only"  # linking would leave its pycs stale
    INLINE_DATA = "inline-data"  # copy-on-write: kept in the filesystem's metadata
    XATTRS_DIFFER = "xattrs-differ"  # ACLs or security labels differ from the object's
    STORE_OBJECT_DAMAGED = "store-object-damaged"
    LINK_FAILED = "link-failed"
    # Pycs beside a source RECORD lists.
    PYC_SOURCE_NOT_SHARED = "pyc-source-not-shared"
    PYC_STALE = "pyc-stale"  # not valid before the scan: Python recompiles it anyway
    PYC_HASH_BASED = "pyc-hash-based"  # PEP 552: stays valid, the source bytes do not change
    PYC_UNRECOGNISED = "pyc-unrecognised"
    PYC_UNREADABLE = "pyc-unreadable"
    PYC_CHANGED = "pyc-changed-during-scan"
    PYC_LINK_FAILED = "pyc-link-failed"
    PYC_ONE_BLOCK = "pyc-one-block"  # copy-on-write: its one block must hold its own header
    # Pycs kept valid but private (their own inode), though sharing was asked for.
    PYC_BUILD_UNKNOWN = "pyc-build-unknown"
    PYC_OTHER_INTERPRETER = "pyc-other-interpreter"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        """What the text report says for it."""
        return _LABELS[self]

    @property
    def for_pyc(self) -> Reason:
        """The reason to count when a pyc, not a source, failed for this reason."""
        return _FOR_PYC.get(self, self)


_LABELS = {
    Reason.PER_INSTALL: "written per install (RECORD, scripts, .pth, ...)",
    Reason.BYTECODE: "compiled bytecode listed in RECORD (found beside its source instead)",
    Reason.NO_HASH: "no hash in RECORD",
    Reason.WEAK_HASH: "weak hash algorithm in RECORD",
    Reason.UNKNOWN_HASH: "unknown hash algorithm in RECORD",
    Reason.OUTSIDE_VENV: "RECORD path outside the venv (or package tree)",
    Reason.DUPLICATE_ENTRY: "listed twice in RECORDs",
    Reason.MALFORMED_RECORD: "malformed RECORD lines",
    Reason.MISSING_RECORD: "distributions without RECORD",
    Reason.ZERO_BYTES: "empty files",
    Reason.SYMLINK: "symlinks (never followed)",
    Reason.NOT_REGULAR: "not a regular file",
    Reason.MISSING: "recorded file missing",
    Reason.UNREADABLE: "not readable",
    Reason.OTHER_FILESYSTEM: "on another filesystem than the store",
    Reason.CHANGED_SINCE_INSTALL: "changed since install",
    Reason.CHANGED_DURING_SCAN: "changed during the scan",
    Reason.PYCACHE_UNREADABLE: "__pycache__ not readable",
    Reason.PYCACHE_READ_ONLY: "__pycache__ not writable: linking would leave its pycs stale",
    Reason.INLINE_DATA: "small enough to be kept in the filesystem's metadata (btrfs): "
    "no blocks to share",
    Reason.XATTRS_DIFFER: "extended attributes (ACLs, labels) differ from the store object's",
    Reason.STORE_OBJECT_DAMAGED: "store object damaged",
    Reason.LINK_FAILED: "could not be linked",
    Reason.PYC_SOURCE_NOT_SHARED: "source not shared",
    Reason.PYC_STALE: "stale before the scan (Python recompiles it anyway)",
    Reason.PYC_HASH_BASED: "hash-based (stays valid: the source bytes do not change)",
    Reason.PYC_UNRECOGNISED: "not a pyc header we know",
    Reason.PYC_UNREADABLE: "not readable",
    Reason.PYC_CHANGED: "changed during the scan",
    Reason.PYC_LINK_FAILED: "could not be linked",
    Reason.PYC_ONE_BLOCK: "one block long: copy-on-write shares whole blocks, and its first "
    "holds its own header",
    Reason.PYC_BUILD_UNKNOWN: "the interpreter build cannot be told (a package tree has "
    "none of its own): pycs of different patch releases must not share",
    Reason.PYC_OTHER_INTERPRETER: "written for another interpreter than the venv's",
}

_FOR_PYC = {
    Reason.LINK_FAILED: Reason.PYC_LINK_FAILED,
    Reason.CHANGED_DURING_SCAN: Reason.PYC_CHANGED,
    Reason.UNREADABLE: Reason.PYC_UNREADABLE,
}
