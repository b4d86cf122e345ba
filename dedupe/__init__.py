"""venv-dedupe: share identical files across Python virtualenvs, proven against RECORD."""

from .errors import DedupeError, StoreError, StoreLockedError, UsageError
from .scan import Problem, ScanResult, StoreReport, VenvReport, VenvSkip, scan

__version__ = "0.1.0"

__all__ = [
    "DedupeError",
    "Problem",
    "ScanResult",
    "StoreError",
    "StoreLockedError",
    "StoreReport",
    "UsageError",
    "VenvReport",
    "VenvSkip",
    "__version__",
    "scan",
]
