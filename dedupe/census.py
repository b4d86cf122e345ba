"""Pass 1's count of how many distinct inodes hold each content, from RECORD and stat
alone, so that no file whose content occurs once is ever read."""

from __future__ import annotations

import struct

import xxhash

from .store import ObjectKey, StoreIndex

__all__ = ["Census", "census_key", "census_prefix"]


def census_prefix(ckey: bytes) -> int:
    """The first 8 bytes of a census key: what pass 1 keeps per candidate to know which
    venvs pass 2 must walk again."""
    return int.from_bytes(ckey[:8], "little")


def census_key(device: int, key: ObjectKey) -> bytes:
    # A 128-bit xxhash of the group identity keeps the census at a few dozen bytes per
    # distinct file. A collision could only merge two groups' counts and cost a read:
    # every link is still proven by the recorded digest (DESIGN.md invariant 2).
    return xxhash.xxh3_128_digest(
        key.algorithm.encode()
        + key.digest
        + struct.pack("<QQQQ", device, key.uid, key.gid, key.mode)
    )


class Census:
    """Pass 1: distinct inodes per content group, plus whether the store already has it."""

    def __init__(self, indexes: dict[int, StoreIndex], clones: int = 0) -> None:
        """clones: the holders a clone is about to add to every content (dedupe.clone):
        each counts as another inode, so a file that occurs once is worth adopting."""
        self._indexes = indexes
        self._clones = clones
        self._counts: dict[bytes, int] = {}
        self._multi_link: set[tuple[int, int]] = set()
        self._stored: dict[int, set[bytes]] = {}

    def add(self, ckey: bytes, device: int, ino: int, multi_link: bool) -> None:
        """Count one candidate inode (multi_link: it had other links when stat'ed)."""
        if multi_link:
            if (device, ino) in self._multi_link:
                return  # another name of an inode already counted
            self._multi_link.add((device, ino))
        count = self._counts.get(ckey)
        if count is None:
            count = 1 if ckey in self._stored_keys(device) else 0
        self._counts[ckey] = count + 1

    def _stored_keys(self, device: int) -> set[bytes]:
        # Made once per device: pass 1 hands candidates over by census key (dedupe.memo).
        found = self._stored.get(device)
        if found is None:
            index = self._indexes.get(device)
            objects = index.objects if index is not None else ()
            found = self._stored[device] = {census_key(device, key) for key in objects}
        return found

    def worth(self, ckey: bytes) -> bool:
        """Linking can reclaim space: two distinct inodes, or one and a store object."""
        return self._counts.get(ckey, 0) + self._clones >= 2

    def worthwhile_prefixes(self) -> set[int]:
        return {census_prefix(k) for k, n in self._counts.items() if n + self._clones >= 2}
