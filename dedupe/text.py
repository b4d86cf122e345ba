"""Sizes and paths as a person reads them."""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["display", "human_size", "shortened"]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def display(path: str) -> str:
    # Non-UTF-8 names carry surrogate escapes; show them as escapes, never crash on them.
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def shortened(paths: Sequence[str]) -> tuple[str, list[str]]:
    """The folder that holds every path ("" when only / does) and each path from there,
    for display. A table cuts no path: cut from the left, `...me/.cache/pypoetry/x` no
    longer says whose cache it is; the common folder, said once, loses nothing."""
    if not paths or not all(os.path.isabs(p) for p in paths):
        return "", [display(p) for p in paths]
    folder = os.path.commonpath([os.path.dirname(p) for p in paths])
    if folder == os.sep:
        return "", [display(p) for p in paths]
    return display(folder), [display(os.path.relpath(p, folder)) for p in paths]
