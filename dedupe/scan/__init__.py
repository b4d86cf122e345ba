"""The scan: discovery -> inventory -> census -> plan -> execute, and its result.

scan() finds the venvs and their stores and runs the two passes (dedupe.scan.run):
pass 1 examines each venv from RECORD and stat alone (examine), pass 2 proves and links
the candidates worth it (share), and the tallies add up to a frozen ScanResult (result).
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from ..discovery import default_roots, find_venvs
from ..errors import UsageError
from ..modes import LinkMode
from ..problems import VenvSkip
from ..workers import can_fork, default_jobs
from .result import Progress, PycReport, RecoveryReport, ScanResult, StoreReport, VenvReport
from .run import Options, ScanRun
from .stores import Stores

__all__ = [
    "Progress",
    "PycReport",
    "RecoveryReport",
    "ScanResult",
    "StoreReport",
    "VenvReport",
    "scan",
]

P = ParamSpec("P")
R = TypeVar("R")


def _collector_paused(run: Callable[P, R]) -> Callable[P, R]:
    """Run without Python's cyclic garbage collector. A scan allocates millions of small
    objects and makes no reference cycles (a scan under gc.disable() leaves nothing for
    gc.collect() to find), so every collection, the full ones walking each object the
    planner keeps, was pure cost: about 5% of a first run's CPU time."""

    @functools.wraps(run)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return run(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


@_collector_paused
def scan(
    roots: Sequence[str | os.PathLike[str]] = (),
    *,
    store: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    share_pyc: bool = True,
    link_mode: str = "auto",
    full: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 0.0,
    on_lock_wait: Callable[[str], None] | None = None,
) -> ScanResult:
    """Deduplicate every venv under roots (the well-known venv homes when empty).

    With dry_run, decide and count exactly as a real run would, changing nothing. With
    share_pyc (the default), the .pyc files of shared sources are shared too; without it
    they stay private, but are kept valid for their newly linked source. link_mode
    (dedupe.modes.LinkMode's values): "reflink" shares data blocks by copy-on-write, each
    file keeping its inode, and refuses a filesystem that cannot; "hardlink" shares
    inodes; "auto" reflinks where the store's filesystem can. A venv whose
    folders and RECORD files are as an earlier run left them is taken from that run's
    memo instead of being walked (see dedupe.memo); full walks every venv. The work is
    shared out between jobs processes (default: one per CPU, see dedupe.workers). When another
    run holds a store's lock, wait up to lock_timeout seconds (telling on_lock_wait once),
    then raise StoreLockedError.
    """
    options = Options(
        dry_run=dry_run, share_pyc=share_pyc, full=full, jobs=_jobs(jobs), progress=progress
    )
    root_list = [os.fspath(r) for r in roots] or [str(p) for p in default_roots()]
    if not root_list:
        raise UsageError("no roots given and none of the well-known venv folders exists")
    discovery = find_venvs(root_list)
    explicit = os.fspath(store) if store is not None else None
    stores = Stores(explicit, dry_run, lock_timeout, on_lock_wait, _link_mode(link_mode))
    skipped_venvs = [VenvSkip(p, r) for p, r in discovery.skipped]
    try:
        venvs = []
        for venv in discovery.venvs:
            reason = stores.store_for(venv)
            if reason is None:
                venvs.append(venv)
            else:
                skipped_venvs.append(VenvSkip(venv.root, reason))
        run = ScanRun(options, stores, venvs)
        try:
            run.recover()
            run.remove_store_leftovers()
            run.examine()
            run.share()
            empty = tuple(f"no venv or package tree found under {r}" for r in discovery.empty_roots)
            return run.result(root_list, skipped_venvs, empty)
        finally:
            run.close()
    finally:
        stores.close()


def _link_mode(value: str) -> LinkMode:
    try:
        return LinkMode(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in LinkMode)
        raise UsageError(f"link_mode must be one of {choices}, not {value!r}") from None


def _jobs(jobs: int | None) -> int:
    if jobs is None:
        return default_jobs()
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, not {jobs}")
    return jobs if can_fork() else 1  # parts in one process would only repeat the walks
