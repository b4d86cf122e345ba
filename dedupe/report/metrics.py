"""A run's figures as metrics for node_exporter's textfile collector (--metrics-file).

Pure: results in, exposition text out (dedupe.report.textfile writes it). Decided here:

- Every metric is a gauge, named without `_total`. The file holds the figures of the last
  run of one command and the next run replaces it whole, so each value goes up or down
  from run to run and starts from nothing in each: a gauge. A counter must only grow for
  as long as what counts it lives, so that rate() means something; Prometheus' naming
  guide keeps `_total` for such accumulating counts, and nothing here accumulates.
- Names carry their unit in base units: `_bytes` (allocated, st_blocks * 512: what du
  shows), `_seconds`, `_timestamp_seconds` for a Unix time; plain counts of things
  (`_files`, `_objects`) as the guide allows for countable things.
- Every sample carries `command` (scan, verify, gc) and `dry_run` ("0" or "1"), and each
  command is meant to have a file of its own. node_exporter merges the metrics of every
  *.prom file in its folder by name: the same series in two files fails the scrape, and
  one name must have one HELP text and one set of label names in all files. So shared
  names (duration, success, errors, the store's figures) differ by label, and every label
  is on every sample (verify has no dry run: always "0"). A dry run is labelled rather
  than left out: its figures are what a real run would do, and its success is not a real
  run's success, so alerts and dashboards can tell them apart.
- No sample has a timestamp: the textfile collector skips a file that has one; its own
  node_textfile_mtime_seconds says when the file was written.
- The time of the last success survives a failed run: the writer reads it back from the
  file it replaces (previous_run) and a failed run writes it again, beside
  venv_dedupe_last_run_success 0. It is 0 when no success is known, so that an alert on
  `time() - venv_dedupe_last_success_timestamp_seconds` fires for a command that never
  succeeded instead of seeing no series at all.
- Every known skip reason is written, 0 when none happened: a series that appears only
  when something goes wrong is harder to alert on and to graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..maintenance.results import GcResult, VerifyResult
from ..maintenance.usage import StoreUsage
from ..reasons import Reason
from ..scan import ScanResult
from ..text import display
from .exposition import ExpositionError, Sample, group_lines, parse_samples

__all__ = [
    "FAMILIES",
    "PREFIX",
    "Command",
    "Family",
    "Figure",
    "Previous",
    "Run",
    "figures_of",
    "previous_run",
    "render",
    "store_figures",
    "store_paths",
]

PREFIX = "venv_dedupe_"
Command = Literal["scan", "verify", "gc"]
Result = ScanResult | VerifyResult | GcResult
RUN_LABELS = ("command", "dry_run")


@dataclass(frozen=True, slots=True)
class Family:
    """One metric name: its HELP text and the labels it has besides RUN_LABELS."""

    name: str
    help: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Figure:
    family: Family
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """The run itself: what the CLI knows whatever the command returned or raised."""

    command: Command
    dry_run: bool
    succeeded: bool  # exit status 0
    duration_seconds: float
    finished_at: float  # Unix time
    last_success: float | None  # read back from the file this one replaces


@dataclass(frozen=True, slots=True)
class Previous:
    """What the file about to be replaced says: this command's last success, and the
    runs of other commands or modes whose figures it held (about to be lost)."""

    last_success: float | None
    others: tuple[str, ...]


def _family(name: str, help_text: str, *labels: str) -> Family:
    return Family(PREFIX + name, help_text, labels)


_WOULD = ' (with dry_run="1": what a real run would do)'
SUCCESS = _family("last_run_success", "1 if the last run of the command exited 0, else 0")
DURATION = _family("last_run_duration_seconds", "How long the last run of the command took")
LAST_SUCCESS = _family(
    "last_success_timestamp_seconds",
    "Unix time the command last exited 0; a failed run keeps it; 0 if none is known",
)
ERRORS = _family("errors", "Problems the last run met: files or objects it could not handle")
SKIPPED_VENVS = _family("skipped_venvs", "Venvs the last run left out (scan, verify)")
VENVS = _family("venvs", "Venvs the last scan examined")
SCANNED_FILES = _family("scanned_files", "Files listed in RECORD that the last scan looked at")
LINKED_FILES = _family("linked_files", "Files the last scan linked to a store object" + _WOULD)
LINKED_PYCS = _family("linked_pycs", "Pycs the last scan linked to a shared pyc object" + _WOULD)
SKIPPED_FILES = _family(
    "skipped_files", "Files listed in RECORD the last scan left as they are, by reason", "reason"
)
SKIPPED_PYCS = _family("skipped_pycs", "Pycs the last scan left as they are, by reason", "reason")
UNSHARED_PYCS = _family(
    "unshared_pycs", "Pycs the last scan kept valid but could not share, by reason", "reason"
)
_UNSHARED = (Reason.PYC_BUILD_UNKNOWN, Reason.PYC_OTHER_INTERPRETER)
RECLAIMED = _family(
    "reclaimed_bytes",
    "Allocated bytes the last scan reclaimed by linking, pycs included" + _WOULD,
)
REMOVED = _family("removed_objects", "Unused store objects the last gc removed" + _WOULD)
FREED = _family("freed_bytes", "Allocated bytes the last gc freed" + _WOULD)
CHECKED = _family("checked_objects", "Store objects the last verify re-hashed")
DAMAGED = _family(
    "damaged_objects", "Store objects whose bytes no longer match their name (found by verify)"
)
STORE_OBJECTS = _family("store_objects", "Objects in the store once the run ended", "store")
STORE_DAMAGED = _family(
    "store_damaged_objects", "Damaged objects verify --repair moved aside (STORE/damaged/)", "store"
)
STORE_UNUSED = _family(
    "store_unused_objects",
    "Store objects no venv uses (link count 1), damaged ones too: what gc removes",
    "store",
)
STORE_UNUSED_BYTES = _family(
    "store_unused_bytes", "Allocated bytes of the store objects no venv uses", "store"
)
STORE_ALLOCATED = _family("store_allocated_bytes", "Allocated bytes of all store objects", "store")
STORE_SAVED = _family(
    "store_saved_bytes",
    "Allocated bytes the store's sharing saves now: (link count - 2) x each object's",
    "store",
)
FAMILIES = (
    SUCCESS,
    DURATION,
    LAST_SUCCESS,
    ERRORS,
    SKIPPED_VENVS,
    VENVS,
    SCANNED_FILES,
    LINKED_FILES,
    LINKED_PYCS,
    SKIPPED_FILES,
    SKIPPED_PYCS,
    UNSHARED_PYCS,
    RECLAIMED,
    REMOVED,
    FREED,
    CHECKED,
    DAMAGED,
    STORE_OBJECTS,
    STORE_DAMAGED,
    STORE_UNUSED,
    STORE_UNUSED_BYTES,
    STORE_ALLOCATED,
    STORE_SAVED,
)


def _by_reason(
    family: Family, counts: dict[str, int], known: tuple[Reason, ...] = tuple(Reason)
) -> list[Figure]:
    """Every known reason, 0 when absent, and any other key the counts hold (a reason a
    newer version wrote to a memo), in the order of their names."""
    every = {reason.value: 0 for reason in known} | counts
    return [Figure(family, n, (("reason", reason),)) for reason, n in sorted(every.items())]


def _scan(r: ScanResult) -> list[Figure]:
    return [
        Figure(ERRORS, len(r.errors)),
        Figure(SKIPPED_VENVS, len(r.skipped_venvs)),
        Figure(VENVS, len(r.venvs)),
        Figure(SCANNED_FILES, r.files_scanned),
        Figure(LINKED_FILES, r.files_linked),
        Figure(LINKED_PYCS, r.pyc.linked),
        *_by_reason(SKIPPED_FILES, r.skipped),
        *_by_reason(SKIPPED_PYCS, r.pyc.skipped),
        *_by_reason(UNSHARED_PYCS, r.pyc.not_shared, _UNSHARED),
        Figure(RECLAIMED, r.bytes_reclaimed),
    ]


def _verify(r: VerifyResult) -> list[Figure]:
    return [
        Figure(ERRORS, len(r.errors)),
        Figure(SKIPPED_VENVS, len(r.skipped_venvs)),
        Figure(CHECKED, r.objects_checked),
        Figure(DAMAGED, len(r.damaged)),
    ]


def _gc(r: GcResult) -> list[Figure]:
    return [
        Figure(ERRORS, len(r.errors)),
        Figure(REMOVED, r.files_removed),
        Figure(FREED, r.bytes_freed),
    ]


def figures_of(result: Result) -> list[Figure]:
    """What the command's result says, without the store's figures (store_figures)."""
    if isinstance(result, ScanResult):
        return _scan(result)
    if isinstance(result, VerifyResult):
        return _verify(result)
    return _gc(result)


def store_paths(result: Result) -> tuple[str, ...]:
    """The stores whose figures the metrics give after this run."""
    if isinstance(result, ScanResult):
        return tuple(s.path for s in result.stores if s.exists)
    if isinstance(result, VerifyResult):
        return result.stores
    return (result.store,)


def store_figures(usages: Iterable[StoreUsage]) -> list[Figure]:
    figures = []
    for u in usages:
        store = (("store", display(u.path)),)
        figures += [
            Figure(STORE_OBJECTS, u.objects, store),
            Figure(STORE_DAMAGED, u.damaged_objects, store),
            Figure(STORE_UNUSED, u.unused_objects, store),
            Figure(STORE_UNUSED_BYTES, u.unused_bytes, store),
            Figure(STORE_ALLOCATED, u.allocated_bytes, store),
            Figure(STORE_SAVED, u.saved_bytes, store),
        ]
    return figures


def _run_labels(command: str, dry_run: bool) -> tuple[tuple[str, str], ...]:
    return (("command", command), ("dry_run", "1" if dry_run else "0"))


def render(run: Run, figures: Sequence[Figure] = ()) -> str:
    """The whole file: the run's own gauges, then the figures given (none when the
    command raised), each name's lines as one group in the order of FAMILIES."""
    last_success = run.finished_at if run.succeeded else (run.last_success or 0.0)
    every = [
        Figure(SUCCESS, 1 if run.succeeded else 0),
        Figure(DURATION, run.duration_seconds),
        Figure(LAST_SUCCESS, last_success),
        *figures,
    ]
    for f in every:
        if f.family not in FAMILIES or tuple(k for k, _ in f.labels) != f.family.labels:
            raise ValueError(f"{f!r} is not a figure of one of FAMILIES, with its labels")
    base = _run_labels(run.command, run.dry_run)
    lines: list[str] = []
    for family in FAMILIES:
        mine = [Sample(family.name, base + f.labels, f.value) for f in every if f.family == family]
        if mine:  # group_lines refuses two samples of one series
            lines += group_lines(family.name, family.help, "gauge", mine)
    return "\n".join(lines) + "\n"


def _describe(command: str | None, dry_run: str | None) -> str:
    if command is None:
        return "a run of no command label"
    return f"{command} --dry-run" if dry_run == "1" else command


def previous_run(text: str, command: Command, dry_run: bool) -> Previous:
    """Read the file about to be replaced. Raises ExpositionError when it is not one that
    venv-dedupe writes (not the format, or a metric of another program): replacing it
    would lose what something else wrote."""
    samples = parse_samples(text)
    foreign = sorted({s.name for s in samples if not s.name.startswith(PREFIX)})
    if foreign:
        raise ExpositionError(f"it holds metrics venv-dedupe does not write: {foreign[0]!r}")
    mine = _run_labels(command, dry_run)
    last_success = None
    others: set[str] = set()
    for s in samples:
        labels = tuple((k, v) for k, v in s.labels if k in RUN_LABELS)
        if labels != mine:
            others.add(_describe(s.label("command"), s.label("dry_run")))
        elif s.name == LAST_SUCCESS.name and s.value > 0:
            last_success = s.value
    return Previous(last_success, tuple(sorted(others)))
