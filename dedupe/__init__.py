"""venv-dedupe: share identical files across Python virtualenvs, proven against RECORD."""

# Before the imports: dedupe.memo keys memos by it.
__version__ = "0.1.0"

from .errors import DedupeError, StoreError, StoreLockedError, UsageError
from .maintenance import (
    DetachResult,
    GcResult,
    InsufficientSpaceError,
    StatusResult,
    VerifyResult,
    detach,
    gc,
    status,
    verify,
)
from .problems import Problem, VenvSkip
from .scan import PycReport, ScanResult, StoreReport, VenvReport, scan

__all__ = [
    "DedupeError",
    "DetachResult",
    "GcResult",
    "InsufficientSpaceError",
    "Problem",
    "PycReport",
    "ScanResult",
    "StatusResult",
    "StoreError",
    "StoreLockedError",
    "StoreReport",
    "UsageError",
    "VenvReport",
    "VenvSkip",
    "VerifyResult",
    "__version__",
    "detach",
    "gc",
    "scan",
    "status",
    "verify",
]
