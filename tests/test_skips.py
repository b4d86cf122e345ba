"""What the scan refuses to share, and why: one scan over the casebook (see casebook.py).

Each case damages its own venv beside an intact twin. For every case: its skip reason is
counted exactly in that venv's report and nothing else differs from the twin's report;
the damaged files keep an inode of their own; the venv is exactly as it was; and the
rest of the venv is still shared (one bad file does not stop the scan).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from casebook import CASES, DIST_INFO, IS_ROOT, MALFORMED_LINES, Case, Context
from helpers import (
    PathState,
    Venv,
    create_venvs,
    inodes,
    snapshot,
    snapshot_diff,
    temp_leftovers,
)

from dedupe import ScanResult, VenvReport, scan

ACTIVE_CASES = [case for case in CASES if IS_ROOT or not case.needs_root]


def case_params() -> list[object]:
    return [
        pytest.param(
            case,
            id=case.name,
            marks=pytest.mark.skipif(
                case.needs_root and not IS_ROOT, reason="chown to another user needs root"
            ),
        )
        for case in CASES
    ]


@dataclass(frozen=True)
class Casebook:
    root: Path
    outside: Path
    venvs: dict[str, Venv]
    before: dict[str, PathState]
    after: dict[str, PathState]
    outside_before: dict[str, PathState]
    outside_inodes_before: dict[str, tuple[int, int]]
    result: ScanResult

    def report(self, name: str) -> VenvReport:
        (found,) = (r for r in self.result.venvs if Path(r.path).name == name)
        return found


@pytest.fixture(scope="module")
def casebook(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Casebook:
    base = tmp_path_factory.mktemp("casebook")
    root, outside, store = base / "venvs", base / "outside", base / "store"
    names = ["twin"] + [name for case in ACTIVE_CASES for name in case.venv_names()]
    built = create_venvs(wheelhouse, root, **{name: ["alpha==1.0"] for name in names})
    venvs = dict(zip(names, built, strict=True))
    for case in ACTIVE_CASES:
        context = Context(outside / case.name)
        context.outside.mkdir(parents=True)
        for name in case.venv_names():
            case.damage(venvs[name], context)
    before = snapshot(root)
    outside_before, outside_inodes_before = snapshot(outside), inodes(outside)

    result = scan([root], store=store)

    return Casebook(
        root=root,
        outside=outside,
        venvs=venvs,
        before=before,
        after=snapshot(root),
        outside_before=outside_before,
        outside_inodes_before=outside_inodes_before,
        result=result,
    )


@pytest.mark.parametrize("case", case_params())
def test_reason_is_counted_in_the_damaged_venv_only(casebook: Casebook, case: Case) -> None:
    expected = dict(casebook.report("twin").skipped)
    if case.reason is not None:
        expected[case.reason] = expected.get(case.reason, 0) + case.count
    for reason in case.also:
        expected[reason] = expected.get(reason, 0) + 1
    for name in case.venv_names():
        assert casebook.report(name).skipped == expected, name


@pytest.mark.parametrize("case", case_params())
def test_damaged_files_keep_an_inode_of_their_own(casebook: Casebook, case: Case) -> None:
    for name in case.venv_names():
        for relpath in case.files:
            damaged = os.lstat(casebook.venvs[name].file(relpath))
            others = {
                os.lstat(venv.file(relpath)).st_ino
                for other, venv in casebook.venvs.items()
                if other != name and venv.file(relpath).exists()
            }
            assert damaged.st_ino not in others, f"{name}: {relpath}"
            # At most its own store object links it; no venv does.
            assert damaged.st_nlink <= 2, f"{name}: {relpath}"


@pytest.mark.parametrize("case", case_params())
def test_damaged_venv_is_as_it_was(casebook: Casebook, case: Case) -> None:
    """Same paths, types, bytes, modes and owners: a skip harms nothing."""
    for name in case.venv_names():
        prefix = f"{name}{os.sep}"
        before = {k: v for k, v in casebook.before.items() if k.startswith(prefix)}
        after = {k: v for k, v in casebook.after.items() if k.startswith(prefix)}
        assert snapshot_diff(before, after) == []


@pytest.mark.parametrize("case", case_params())
def test_rest_of_the_damaged_venv_is_shared(casebook: Casebook, case: Case) -> None:
    twin = casebook.venvs["twin"]
    for name in case.venv_names():
        venv = casebook.venvs[name]
        for relpath in ("alpha/__init__.py", f"{DIST_INFO}/METADATA"):
            assert os.lstat(venv.file(relpath)).st_ino == os.lstat(twin.file(relpath)).st_ino, (
                f"{name}: {relpath}"
            )


def test_files_outside_the_venvs_are_untouched(casebook: Casebook) -> None:
    """Files reached by a RECORD path that climbs out, or through a symlink, stay as they were."""
    assert casebook.outside_before, "precondition: the cases put files outside"
    assert snapshot_diff(casebook.outside_before, snapshot(casebook.outside)) == []
    assert inodes(casebook.outside) == casebook.outside_inodes_before
    for relpath in casebook.outside_inodes_before:
        assert os.lstat(casebook.outside / relpath).st_nlink == 1, relpath


def test_whole_tree_is_as_it_was_and_the_scan_had_no_errors(casebook: Casebook) -> None:
    assert snapshot_diff(casebook.before, casebook.after) == []
    assert temp_leftovers(casebook.root) == []
    assert casebook.result.errors == ()
    assert casebook.result.skipped_venvs == ()


def test_malformed_lines_are_warnings_naming_the_record(casebook: Casebook) -> None:
    """Bad input is a warning (exit code 0) that names the RECORD it is in."""
    record = str(casebook.venvs["malformed-lines-1"].record(DIST_INFO))
    warnings = [w for w in casebook.result.warnings if record in w.path or record in w.error]
    assert warnings, casebook.result.warnings
    text = " ".join(w.error for w in warnings)
    for line in MALFORMED_LINES:
        assert line[:12] in text, line


def test_totals_add_up_the_venv_reports(casebook: Casebook) -> None:
    totals: dict[str, int] = {}
    for report in casebook.result.venvs:
        for reason, count in report.skipped.items():
            totals[reason] = totals.get(reason, 0) + count
    assert casebook.result.skipped == totals
