"""Store maintenance: status, verify, detach and gc decide and account; dedupe.link changes."""

from __future__ import annotations

# Not exported, still reachable as before the split: tests patch maintenance.os.statvfs
# and catch maintenance.UsageError.
import os as os

from ..errors import UsageError as UsageError

# The command modules are not named after their functions (status, verify, ...), so that
# dedupe.maintenance.status is one thing: the function (dedupe.scan shows the trouble).
from .collection import gc
from .detachment import SPACE_MARGIN, InsufficientSpaceError, detach
from .owners import distribution_of
from .results import DetachResult, Distribution, GcResult, StatusResult, VerifyResult
from .savings import status
from .verification import verify

__all__ = [
    "SPACE_MARGIN",
    "DetachResult",
    "Distribution",
    "GcResult",
    "InsufficientSpaceError",
    "StatusResult",
    "VerifyResult",
    "detach",
    "distribution_of",
    "gc",
    "status",
    "verify",
]
