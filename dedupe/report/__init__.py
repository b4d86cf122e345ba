"""Rendering results as text or JSON: a scan's (.scan) and status, verify, detach, gc's."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..text import human_size

if TYPE_CHECKING:
    from .scan import render_problems, render_text, to_json

# The names dedupe.report had before it became a package: a scan's renderers. Loaded on
# first use (PEP 562), so that `from dedupe.report.maintenance import ...` does not pull
# in the scan's machinery through this package.
_LAZY = dict.fromkeys(("render_problems", "render_text", "to_json"), "scan")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["human_size", "render_problems", "render_text", "to_json"]
