"""Sizes and paths as a person reads them."""

from __future__ import annotations

__all__ = ["display", "human_size"]


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
