"""What a store holds and what it saves now, from a stat of every object and no venv walk."""

from __future__ import annotations

from dataclasses import dataclass

from ..store import open_store, saved_bytes
from .placement import store_files

__all__ = ["StoreUsage", "store_usage"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreUsage:
    """The figures of dedupe.maintenance.status's StoreStatus that need no venv walked,
    by the same definitions: StoreFiles.unused, saved_bytes()."""

    path: str
    objects: int
    damaged_objects: int  # moved aside by verify --repair (STORE/damaged/)
    unused_objects: int  # StoreFiles.unused: damaged ones too, what gc removes
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
    files = store_files(store)
    unused = files.unused
    return StoreUsage(
        path=store.path,
        objects=len(files.objects),
        damaged_objects=len(files.damaged),
        unused_objects=len(unused),
        unused_bytes=sum(st.st_blocks * 512 for _, st in unused),
        allocated_bytes=sum(o.st.st_blocks * 512 for o in files.objects),
        saved_bytes=sum(saved_bytes(o.st) for o in files.objects),
    )
