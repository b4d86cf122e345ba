"""`status`: what sharing saves now, in total, per venv and per distribution."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..problems import Problem
from ..store import saved_bytes
from .owners import Owners
from .placement import list_objects, place_roots, shared_files
from .results import Distribution, DistributionStatus, StatusResult, StoreStatus, VenvStatus

__all__ = ["status"]


def status(
    roots: Sequence[str | os.PathLike[str]] = (), store: str | os.PathLike[str] | None = None
) -> StatusResult:
    """What sharing saves now: in total, per venv and per distribution.

    An object with link count n >= 2 saves (n - 2) * its allocated bytes: its n - 1 venv
    names share one inode that n - 1 copies would otherwise need. Each name is given an
    equal share of that, so the venvs' shares add up to the total when every name of
    every object is under the roots.
    """
    placement = place_roots(roots, os.fspath(store) if store is not None else None)
    warnings: list[Problem] = []
    venv_files = [0] * len(placement.venvs)
    venv_saved = [0] * len(placement.venvs)
    dists: dict[Distribution, list[int]] = {}  # -> [files, bytes]
    dist_venvs: dict[Distribution, set[int]] = {}
    store_reports = []
    for store_ in placement.stores.values():
        objects = {o.st.st_ino: o for o in list_objects(store_)}
        holders: dict[int, list[tuple[int, Distribution | None]]] = {}
        for index, (venv, venv_store) in enumerate(placement.venvs):
            if venv_store is not store_:
                continue
            owners = Owners(venv)
            for at, st in shared_files(venv, objects.keys(), warnings):
                owner = owners.of(at.path)
                dist = owner.distribution if owner is not None else None
                holders.setdefault(st.st_ino, []).append((index, dist))
        saved_total = unused = unused_bytes = allocated = outside = 0
        for ino, obj in objects.items():
            blocks = obj.st.st_blocks * 512
            allocated += blocks
            names = obj.st.st_nlink - 1
            if names == 0:
                unused += 1
                unused_bytes += blocks
                continue
            saved = saved_bytes(obj.st)
            saved_total += saved
            found = holders.get(ino, [])[:names]
            outside += names - len(found)
            base, remainder = divmod(saved, names)
            for i, (index, dist) in enumerate(found):
                share = base + (1 if i < remainder else 0)
                venv_files[index] += 1
                venv_saved[index] += share
                if dist is not None:
                    totals = dists.setdefault(dist, [0, 0])
                    totals[0] += 1
                    totals[1] += share
                    dist_venvs.setdefault(dist, set()).add(index)
        store_reports.append(
            StoreStatus(
                store_.path,
                len(objects),
                unused,
                unused_bytes,
                allocated,
                saved_total,
                outside,
            )
        )
    return StatusResult(
        roots=placement.roots,
        stores=tuple(store_reports),
        venvs=tuple(
            VenvStatus(v.root, s.path if s else None, venv_files[i], venv_saved[i])
            for i, (v, s) in enumerate(placement.venvs)
        ),
        distributions=tuple(
            DistributionStatus(d.name, d.version, len(dist_venvs[d]), files, saved)
            for d, (files, saved) in sorted(dists.items())
        ),
        skipped_venvs=tuple(placement.skipped),
        objects=sum(s.objects for s in store_reports),
        unused_objects=sum(s.unused_objects for s in store_reports),
        unused_bytes=sum(s.unused_bytes for s in store_reports),
        bytes_saved=sum(s.bytes_saved for s in store_reports),
        files_shared=sum(venv_files),
        notes=tuple(placement.notes),
        warnings=tuple(warnings),
    )
