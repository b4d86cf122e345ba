"""venv-dedupe: share identical files across Python virtualenvs, proven against RECORD."""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import DedupeError, StoreError, StoreLockedError, UsageError
from .problems import Problem, VenvSkip

if TYPE_CHECKING:
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
    from .scan import PycReport, ScanResult, StoreReport, VenvReport, scan

# Imported on first use (PEP 562): `venv-dedupe --help` and `--version` must not pay for
# the scan's machinery, and `from dedupe import scan` works as before.
_LAZY = {
    **dict.fromkeys(
        (
            "DetachResult",
            "GcResult",
            "InsufficientSpaceError",
            "StatusResult",
            "VerifyResult",
            "detach",
            "gc",
            "status",
            "verify",
        ),
        "maintenance",
    ),
    **dict.fromkeys(
        ("PycReport", "ScanResult", "StoreReport", "VenvReport", "scan"),
        "scan",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        # Loading the submodule dedupe.scan (as dedupe.maintenance does) binds its name on
        # this package; `dedupe.scan` stays the function, as when it was imported eagerly.
        if name == "scan" and isinstance(value, types.ModuleType):
            value = value.scan
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
