"""The ways a scan can share a file's data with its store (the link modes), and which one
a filesystem gets."""

from __future__ import annotations

import enum

from . import cow

__all__ = ["LinkMode", "choose", "mode_for"]


class LinkMode(enum.Enum):
    AUTO = "auto"  # reflink where the filesystem can, hardlink elsewhere
    HARDLINK = "hardlink"  # one inode for every copy (owner, mode and times shared too)
    REFLINK = "reflink"  # each file keeps its inode; only its data blocks are shared


def mode_for(requested: LinkMode, store_folder: str) -> LinkMode | str:
    """The mode a store's filesystem uses (found by trying a clone in store_folder, a
    folder of it), or why it cannot have the mode requested."""
    if requested is LinkMode.HARDLINK:
        return LinkMode.HARDLINK
    clones = cow.can_share(store_folder)
    return choose(requested, clones, cow.filesystem_type(store_folder) if clones else None)


def choose(requested: LinkMode, clones: bool, fs_type: int | None) -> LinkMode | str:
    """mode_for's answer from what the filesystem showed: whether a clone worked, and its
    statfs type. Copy-on-write mode rests on what XFS and btrfs do (a clone writes its
    source back before the remap, the journal orders a remap before a later rename), so
    other filesystems that clone get hardlinks (auto) or a refusal (reflink)."""
    if requested is LinkMode.HARDLINK:
        return LinkMode.HARDLINK
    if clones and fs_type in cow.PROVEN_FILESYSTEMS:
        return LinkMode.REFLINK
    if requested is LinkMode.AUTO:
        return LinkMode.HARDLINK
    if clones:
        return (
            f"its filesystem (statfs type {fs_type or 0:#x}) can clone, but copy-on-write mode "
            "is proven on XFS and btrfs only: use --link-mode hardlink or auto"
        )
    return (
        "its filesystem cannot share data blocks between files (copy-on-write): "
        "use --link-mode hardlink or auto"
    )
