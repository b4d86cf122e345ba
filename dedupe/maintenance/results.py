"""The frozen results of status, verify, detach and gc, and the Distribution they name."""

from __future__ import annotations

from dataclasses import dataclass

from ..caches import Whereabouts
from ..problems import Problem, VenvSkip

__all__ = [
    "DamagedObject",
    "DetachResult",
    "Distribution",
    "DistributionStatus",
    "GcResult",
    "LinkedFile",
    "SpaceCheck",
    "StatusResult",
    "StoreStatus",
    "VenvDetach",
    "VenvRepair",
    "VenvStatus",
    "VerifyResult",
]


@dataclass(frozen=True, slots=True, order=True)
class Distribution:
    name: str  # packaging.utils.canonicalize_name
    version: str  # packaging's normal form where it parses, else as written

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name


@dataclass(frozen=True, slots=True)
class StoreStatus:
    path: str
    objects: int
    damaged_objects: int  # moved aside by verify --repair (STORE/damaged/)
    unused_objects: int  # link count 1, damaged ones too: what gc removes
    unused_bytes: int  # allocated bytes gc would free
    allocated_bytes: int  # of every object
    bytes_saved: int  # allocated bytes that sharing saves now
    links_outside_roots: int  # names of its objects not found in the venvs looked at
    outside_roots: Whereabouts  # where those are: in which cache folders, or not found


@dataclass(frozen=True, slots=True)
class VenvStatus:
    path: str
    store: str | None  # None: no store exists for its filesystem
    files_shared: int
    bytes_saved: int  # its share of what the objects it links to save
    # Copy-on-write: the bytes of its files in blocks other files share (FIEMAP).
    bytes_in_shared_blocks: int = 0


@dataclass(frozen=True, slots=True)
class DistributionStatus:
    name: str
    version: str
    venvs: int
    files_shared: int
    bytes_saved: int


@dataclass(frozen=True, slots=True)
class StatusResult:
    roots: tuple[str, ...]
    stores: tuple[StoreStatus, ...]
    venvs: tuple[VenvStatus, ...]
    distributions: tuple[DistributionStatus, ...]
    skipped_venvs: tuple[VenvSkip, ...]
    objects: int
    damaged_objects: int
    unused_objects: int
    unused_bytes: int
    bytes_saved: int  # over every object of the stores, whoever links to them
    files_shared: int
    notes: tuple[str, ...]
    warnings: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class LinkedFile:
    """A venv file that is a name of a damaged object: it holds the damaged bytes too."""

    path: str
    venv: str
    distribution: Distribution | None  # None: no RECORD of the venv lists it


@dataclass(frozen=True, slots=True, kw_only=True)
class DamagedObject:
    path: str
    store: str
    problem: str
    other_links: int  # names besides the store's own (link count - 1)
    linked_files: tuple[LinkedFile, ...]
    moved_to: str | None  # where --repair moved it
    outside_roots: Whereabouts  # where its names outside the venvs looked at are


@dataclass(frozen=True, slots=True)
class VenvRepair:
    """What gives one venv intact files of one distribution again."""

    venv: str
    distribution: Distribution | None
    command: str | None
    paths: tuple[str, ...]
    note: str | None  # what to know before running the command


@dataclass(frozen=True, slots=True)
class VerifyResult:
    roots: tuple[str, ...]
    stores: tuple[str, ...]
    objects_checked: int
    damaged: tuple[DamagedObject, ...]
    repairs: tuple[VenvRepair, ...]
    repair: bool  # --repair was asked for
    skipped_venvs: tuple[VenvSkip, ...]
    errors: tuple[Problem, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.errors


@dataclass(frozen=True, slots=True)
class SpaceCheck:
    """Room on one filesystem for the private copies detach makes there."""

    mount_point: str
    files: int
    bytes_needed: int
    bytes_available: int  # f_bavail * f_frsize
    margin: int
    fits: bool


@dataclass(frozen=True, slots=True)
class VenvDetach:
    path: str
    store: str | None
    files_shared: int
    bytes_needed: int
    files_detached: int


@dataclass(frozen=True, slots=True)
class DetachResult:
    dry_run: bool
    venvs: tuple[VenvDetach, ...]
    skipped_venvs: tuple[VenvSkip, ...]
    space: tuple[SpaceCheck, ...]
    files_shared: int
    files_detached: int
    bytes_needed: int
    errors: tuple[Problem, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GcResult:
    dry_run: bool
    store: str
    objects: int  # before the run, as status counts them: the damaged ones apart
    damaged_objects: int  # moved aside by verify --repair; removed too once unused
    files_removed: int
    bytes_freed: int  # allocated: what du shows
    apparent_bytes_freed: int
    folders_removed: int
    errors: tuple[Problem, ...]
    notes: tuple[str, ...]
