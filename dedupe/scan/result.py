"""What a scan returns: frozen reports per venv, per store and in total."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..caches import Whereabouts
from ..problems import Problem, VenvSkip

__all__ = ["Progress", "PycReport", "RecoveryReport", "ScanResult", "StoreReport", "VenvReport"]


Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True, slots=True, kw_only=True)
class PycReport:
    """What happened to the .pyc files beside the sources RECORD lists."""

    scanned: int
    linked: int  # replaced by a link to the group's shared pyc object
    stored: int  # became a shared pyc object (or a new one was written for the group)
    already_shared: int
    rewritten: int  # given a private copy whose header names the shared source's mtime
    kept_private: int  # --no-share-pyc: valid as they are, left private
    bytes_reclaimed: int
    apparent_bytes_reclaimed: int
    skipped: dict[str, int]  # left as they are, by reason
    # Of those kept or rewritten, the ones that sharing could not take, by reason.
    not_shared: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    """What the scan found in the stores' journals, of runs killed before they finished
    a batch (dedupe.scan.recovery), and what it did about it; in a dry run, what a real
    run would do."""

    entries: int  # journal entries found
    pycs_healed: int  # valid before the killed run, stale after it, valid again
    temp_files_removed: int  # temp names in the folders the entries name
    entries_dropped: int  # of venvs that are gone
    entries_kept: int  # of venvs outside this scan's roots: for a later scan


@dataclass(frozen=True, slots=True, kw_only=True)
class VenvReport:
    path: str
    kind: str  # what the tree is: venv, target, prefix or user-site (dedupe.discovery.Kind)
    python: str | None  # the minor version its files were installed for ("3.11"), if known
    unchanged: bool  # as the last run left it: pass 1 took it from its memo
    files_scanned: int
    files_eligible: int
    files_linked: int  # replaced by a link to an object, without gain too
    files_linked_without_gain: int  # of files_linked: their inode had other names
    files_already_shared: int
    files_stored: int  # the first copy: its inode became the store's object
    bytes_reclaimed: int  # all files, pycs included
    apparent_bytes_reclaimed: int
    skipped: dict[str, int]
    pyc: PycReport
    notes: tuple[str, ...]  # what is worth saying of it that is no problem


@dataclass(frozen=True, slots=True)
class StoreReport:
    """The store as the scan leaves it. What its objects save and how many no venv uses
    are dedupe.maintenance.status's to tell: they move with every venv removed or pip
    uninstall anywhere, out of a scan's sight, so only a stat of every object knows them."""

    path: str
    objects: int  # from the folder listing (d_ino), not a stat per object
    exists: bool
    scan_state_bytes: int  # the scan's memos and trash folder, not in store_overhead_bytes
    link_mode: str = "hardlink"  # how its filesystem shares: modes.LinkMode's value


@dataclass(frozen=True, slots=True)
class ScanResult:
    dry_run: bool
    roots: tuple[str, ...]
    venvs: tuple[VenvReport, ...]
    venvs_unchanged: int  # pass 1 took them from an earlier run's memo
    skipped_venvs: tuple[VenvSkip, ...]
    stores: tuple[StoreReport, ...]
    files_scanned: int
    files_eligible: int
    files_linked: int
    files_already_shared: int
    files_stored: int
    files_unique: int
    files_linked_without_gain: int
    # Names outside the venvs walked, where the caches of uv, conda, pdm or poetry hold
    # them: of the inodes linked away without gain (du must cover them too for the figure
    # to hold), and of the inodes that became objects in this run.
    replaced_names_elsewhere: Whereabouts
    object_names_elsewhere: Whereabouts
    leftovers_removed: int
    recovery: RecoveryReport  # from the journal of a killed run
    bytes_reclaimed: int  # all files, pycs included
    apparent_bytes_reclaimed: int
    pyc: PycReport
    store_overhead_bytes: int  # the store's new folders: measured, or estimated in a dry run
    # (the scan's memos are apart: StoreReport.scan_state_bytes)
    # What the venvs' folders grew by while the run added temp names to them (a real run
    # only: a full ext4 folder takes a new block for one, and never gives it back).
    folder_growth_bytes: int
    skipped: dict[str, int]
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    notes: tuple[str, ...] = ()  # roots under which no venv or package tree was found
