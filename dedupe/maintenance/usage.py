"""What a store holds and what it saves now, from a stat of every object and no venv walk."""

from __future__ import annotations

from dataclasses import dataclass

from ..store import open_store, saved_bytes
from .placement import list_objects

__all__ = ["StoreUsage", "store_usage"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreUsage:
    """The figures of dedupe.maintenance.status's StoreStatus that need no venv walked,
    by the same definitions: unused is link count 1, saved is saved_bytes()."""

    path: str
    objects: int
    unused_objects: int
    unused_bytes: int
    allocated_bytes: int
    saved_bytes: int


def store_usage(path: str) -> StoreUsage | None:
    """The store at path as it is now; None when there is none (a dry run made none).

    One lstat per object, outside the store's lock: a run at the same time may move the
    figures while they are read, as it would a moment after. Raises StoreError when the
    store cannot be opened or listed.
    """
    store = open_store(path, create=False)
    if store is None:
        return None
    objects = list_objects(store)
    unused = [o.st for o in objects if o.st.st_nlink == 1]
    return StoreUsage(
        path=store.path,
        objects=len(objects),
        unused_objects=len(unused),
        unused_bytes=sum(st.st_blocks * 512 for st in unused),
        allocated_bytes=sum(o.st.st_blocks * 512 for o in objects),
        saved_bytes=sum(saved_bytes(o.st) for o in objects),
    )
