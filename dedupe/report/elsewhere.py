"""Saying where names outside the roots are: the cache folders found, and what was not."""

from __future__ import annotations

from ..caches import Whereabouts
from ..text import display

__all__ = ["where"]

_SHOWN = 5  # folders named one by one; conda's pkgs has one per package


def where(names: Whereabouts) -> str:
    """`592 in /x/uvcache/archive-v0, 3 elsewhere, not found in ...`: the caches that
    hold the names, most first, then the names no cache looked in holds."""
    parts = [f"{n.names:,} in {display(n.folder)}" for n in names.found[:_SHOWN]]
    rest = names.found[_SHOWN:]
    if rest:
        parts.append(f"{sum(n.names for n in rest):,} in {len(rest):,} other cache folder(s)")
    if names.not_found:
        looked = ", ".join(map(display, names.looked_in))
        parts.append(
            f"{names.not_found:,} elsewhere, not found"
            + (
                f" in the caches looked in ({looked})"
                if looked
                else " (no cache of uv, conda, pdm or poetry to look in)"
            )
        )
    return ", ".join(parts)
