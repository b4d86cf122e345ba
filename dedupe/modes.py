"""The ways a scan can share a file's data with its store (the link modes), and which one
a filesystem gets."""

from __future__ import annotations

import enum

from . import cow

__all__ = ["LinkMode", "mode_for"]


class LinkMode(enum.Enum):
    AUTO = "auto"  # reflink where the filesystem can, hardlink elsewhere
    HARDLINK = "hardlink"  # one inode for every copy (owner, mode and times shared too)
    REFLINK = "reflink"  # each file keeps its inode; only its data blocks are shared


def mode_for(requested: LinkMode, store_folder: str) -> LinkMode | str:
    """The mode a store's filesystem uses (found by trying a clone in store_folder, a
    folder of it), or why it cannot have the mode requested."""
    if requested is LinkMode.HARDLINK:
        return LinkMode.HARDLINK
    if cow.can_share(store_folder):
        return LinkMode.REFLINK
    if requested is LinkMode.REFLINK:
        return (
            "its filesystem cannot share data blocks between files (copy-on-write): "
            "use --link-mode hardlink or auto"
        )
    return LinkMode.HARDLINK
