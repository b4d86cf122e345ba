"""`status`: what sharing saves now, in total, per venv and per distribution."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from .. import cow
from ..caches import cache_folders, find_names
from ..problems import Problem
from ..store import Store, saved_bytes
from ..tree import At
from .owners import Owners
from .placement import Placement, StoreFiles, place_roots, shared_files, store_files
from .results import Distribution, DistributionStatus, StatusResult, StoreStatus, VenvStatus

__all__ = ["status"]


_Holders = dict[int, list[tuple[int, Distribution | None]]]  # inode -> (venv index, dist)


@dataclass(slots=True)
class _Tally:
    """What the venvs (by index in the placement) and distributions are given, so far."""

    venv_files: list[int]
    venv_saved: list[int]
    venv_blocks: list[int] = field(default_factory=list)  # copy-on-write: shared bytes
    dists: dict[Distribution, list[int]] = field(default_factory=dict)  # -> [files, bytes]
    dist_venvs: dict[Distribution, set[int]] = field(default_factory=dict)

    def give(self, index: int, dist: Distribution | None, share: int) -> None:
        self.venv_files[index] += 1
        self.venv_saved[index] += share
        if dist is not None:
            totals = self.dists.setdefault(dist, [0, 0])
            totals[0] += 1
            totals[1] += share
            self.dist_venvs.setdefault(dist, set()).add(index)


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
    n = len(placement.venvs)
    tally = _Tally([0] * n, [0] * n, [0] * n)
    store_reports = []
    for store_ in placement.stores.values():
        files = store_files(store_)
        inodes = {o.st.st_ino for o in files.objects}
        holders = _holders(placement, store_, inodes, warnings)
        unused = files.unused  # a stat of each object, and a FIEMAP of each cow one
        report = _account(store_, files, unused, holders, tally)
        if any(o.key.cow for o in files.objects):
            report = _account_cow(placement, store_, files, unused, report, tally, warnings)
        store_reports.append(report)
    return _result(placement, store_reports, tally, warnings)


def _holders(
    placement: Placement, store: Store, inodes: Container[int], warnings: list[Problem]
) -> _Holders:
    """inode -> the venvs (by index) whose files are names of it, with their distribution."""
    holders: _Holders = {}
    for index, (venv, venv_store) in enumerate(placement.venvs):
        if venv_store is not store:
            continue
        owners = Owners(venv)
        for at, st in shared_files(venv, inodes, warnings):
            owner = owners.of(at.path)
            dist = owner.distribution if owner is not None else None
            holders.setdefault(st.st_ino, []).append((index, dist))
    return holders


def _account(
    store: Store,
    files: StoreFiles,
    unused: list[tuple[str, os.stat_result]],
    holders: _Holders,
    tally: _Tally,
) -> StoreStatus:
    """What the store's objects save, each object's saving shared out among its names."""
    saved_total = allocated = 0
    outside: dict[tuple[int, int], int] = {}  # names the venvs looked at do not hold
    for obj in files.objects:
        allocated += obj.st.st_blocks * 512
        names = obj.st.st_nlink - 1
        if names == 0:
            continue
        saved = saved_bytes(obj.st)
        saved_total += saved
        found = holders.get(obj.st.st_ino, [])[:names]
        if names > len(found):
            outside[obj.st.st_dev, obj.st.st_ino] = names - len(found)
        base, remainder = divmod(saved, names)
        for i, (index, dist) in enumerate(found):
            tally.give(index, dist, base + (1 if i < remainder else 0))
    return StoreStatus(
        path=store.path,
        objects=len(files.objects),
        damaged_objects=len(files.damaged),
        unused_objects=len(unused),
        unused_bytes=sum(st.st_blocks * 512 for _, st in unused),
        allocated_bytes=allocated,
        bytes_saved=saved_total,
        links_outside_roots=sum(outside.values()),
        outside_roots=find_names(outside, cache_folders() if outside else []),
    )


class _Every:
    """Every inode: shared_files() then yields every regular file of a venv."""

    def __contains__(self, item: object) -> bool:
        return True


def _account_cow(
    placement: Placement,
    store: Store,
    files: StoreFiles,
    unused: list[tuple[str, os.stat_result]],
    report: StoreStatus,
    tally: _Tally,
    warnings: list[Problem],
) -> StoreStatus:
    """A copy-on-write store shares blocks, not inodes: each venv file's bytes in shared
    blocks (FIEMAP's flag), and as the saving their sum less the store's copies that
    hold those blocks once."""
    in_venvs = 0
    for index, (venv, venv_store) in enumerate(placement.venvs):
        if venv_store is not store:
            continue
        owners = Owners(venv)
        for at, _st in shared_files(venv, _Every(), warnings):
            shared = _shared_bytes(at)
            if shared:
                owner = owners.of(at.path)
                tally.give(index, owner.distribution if owner is not None else None, 0)
                tally.venv_blocks[index] += shared
                in_venvs += shared
    # The copies some file shares blocks with: the cow objects StoreFiles.unused keeps.
    gone = {path for path, _st in unused}
    held = sum(o.st.st_blocks * 512 for o in files.objects if o.key.cow and o.path not in gone)
    return dataclasses.replace(report, bytes_saved=report.bytes_saved + max(0, in_venvs - held))


def _shared_bytes(at: At) -> int:
    try:
        folder, name = at.folder()
        return cow.shared_bytes(cow.file_extents(name, folder))
    except OSError:
        return 0


def _result(
    placement: Placement,
    store_reports: list[StoreStatus],
    tally: _Tally,
    warnings: list[Problem],
) -> StatusResult:
    return StatusResult(
        roots=placement.roots,
        stores=tuple(store_reports),
        venvs=tuple(
            VenvStatus(
                v.root,
                s.path if s else None,
                tally.venv_files[i],
                tally.venv_saved[i],
                tally.venv_blocks[i],
            )
            for i, (v, s) in enumerate(placement.venvs)
        ),
        distributions=tuple(
            DistributionStatus(d.name, d.version, len(tally.dist_venvs[d]), files, saved)
            for d, (files, saved) in sorted(tally.dists.items())
        ),
        skipped_venvs=tuple(placement.skipped),
        objects=sum(s.objects for s in store_reports),
        damaged_objects=sum(s.damaged_objects for s in store_reports),
        unused_objects=sum(s.unused_objects for s in store_reports),
        unused_bytes=sum(s.unused_bytes for s in store_reports),
        bytes_saved=sum(s.bytes_saved for s in store_reports),
        files_shared=sum(tally.venv_files),
        notes=tuple(placement.notes),
        warnings=tuple(warnings),
    )
