"""The clone: a new venv of SRC's interpreter with SRC's distributions, sharing every
proven file with its store object.

clone() (dedupe.clone.run) scans SRC into its store first (adopt), plans DST file by file
(plan: shared, copied with a reason, written anew: scripts (scripts), RECORD, .pth files),
makes DST's venv (venvcfg) and its files (build) under a temp name, and renames it into
place; the frozen CloneResult (result) says what it did.
"""

from __future__ import annotations

from .result import CloneResult, CopiedFile, CopyReason, Written
from .run import clone

__all__ = ["CloneResult", "CopiedFile", "CopyReason", "Written", "clone"]
