"""The metrics of a run as text, without a disk: results built here, the text read back by
tests/promtext.py (a strict reader of its own) and, where it says so, by the module's."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from promtext import read_prom, value

from dedupe.caches import Whereabouts
from dedupe.maintenance.results import DamagedObject, GcResult, VerifyResult
from dedupe.maintenance.usage import StoreUsage
from dedupe.problems import Problem, VenvSkip
from dedupe.reasons import Reason
from dedupe.report.exposition import ExpositionError
from dedupe.report.metrics import (
    FAMILIES,
    Figure,
    Run,
    figures_of,
    previous_run,
    render,
    store_figures,
    store_paths,
)
from dedupe.scan import PycReport, RecoveryReport, ScanResult, StoreReport

FINISHED, EARLIER = 1_800_000_000.25, 1_700_000_000.5


def pyc_report(**skipped: int) -> PycReport:
    return PycReport(
        scanned=10,
        linked=4,
        stored=2,
        already_shared=1,
        rewritten=0,
        kept_private=0,
        bytes_reclaimed=16384,
        apparent_bytes_reclaimed=9000,
        skipped=skipped,
        not_shared={"pyc-build-unknown": 3},
    )


def scan_result(**changes: object) -> ScanResult:
    result = ScanResult(
        dry_run=False,
        roots=("/srv/venvs",),
        venvs=(),
        venvs_unchanged=0,
        skipped_venvs=(VenvSkip("/srv/venvs/x", "no pyvenv.cfg home"),),
        stores=(
            StoreReport("/srv/store", 12, True, 4096),
            StoreReport("/other/store", 0, False, 0),
        ),
        files_scanned=40,
        files_eligible=30,
        files_linked=7,
        files_already_shared=3,
        files_stored=5,
        files_unique=2,
        files_linked_without_gain=0,
        replaced_names_elsewhere=Whereabouts((), 0, ()),
        object_names_elsewhere=Whereabouts((), 0, ()),
        leftovers_removed=0,
        recovery=RecoveryReport(
            entries=0, pycs_healed=0, temp_files_removed=0, entries_dropped=0, entries_kept=0
        ),
        bytes_reclaimed=65536,
        apparent_bytes_reclaimed=50000,
        pyc=pyc_report(**{"pyc-stale": 2, "xattrs-differ": 1}),
        store_overhead_bytes=8192,
        folder_growth_bytes=0,
        skipped={"per-install": 6, "symlink": 2, "from-a-newer-version": 1},
        errors=(Problem("/srv/venvs/a/x.py", "link failed"),),
        warnings=(),
    )
    return replace(result, **changes)  # type: ignore[arg-type]


def verify_result() -> VerifyResult:
    damaged = DamagedObject(
        path="/srv/store/objects/x",
        store="/srv/store",
        problem="bad",
        other_links=2,
        linked_files=(),
        moved_to=None,
        outside_roots=Whereabouts((), 0, ()),
    )
    return VerifyResult(
        roots=("/srv/venvs",),
        stores=("/srv/store",),
        objects_checked=12,
        damaged=(damaged,),
        repairs=(),
        repair=False,
        skipped_venvs=(),
        errors=(),
        notes=(),
    )


def gc_result(dry_run: bool = False) -> GcResult:
    return GcResult(
        dry_run=dry_run,
        store="/srv/store",
        objects=12,
        damaged_objects=0,
        files_removed=3,
        bytes_freed=12288,
        apparent_bytes_freed=3000,
        folders_removed=1,
        errors=(),
        notes=(),
    )


def usage(path: str = "/srv/store") -> StoreUsage:
    return StoreUsage(
        path=path,
        objects=12,
        damaged_objects=2,
        unused_objects=1,
        unused_bytes=4096,
        allocated_bytes=49152,
        saved_bytes=81920,
    )


def run(command: str = "scan", **changes: object) -> Run:
    fields: dict[str, object] = {
        "command": command,
        "dry_run": False,
        "succeeded": True,
        "duration_seconds": 7.016,
        "finished_at": FINISHED,
        "last_success": EARLIER,
    }
    fields.update(changes)
    return Run(**fields)  # type: ignore[arg-type]


def test_a_scan_gives_its_figures_and_every_skip_reason() -> None:
    result = scan_result()
    text = render(run(succeeded=False), figures_of(result) + store_figures([usage()]))
    m = read_prom(text)
    base = {"command": "scan", "dry_run": "0"}
    assert value(m, "venv_dedupe_reclaimed_bytes", **base) == 65536
    assert value(m, "venv_dedupe_linked_files", **base) == 7
    assert value(m, "venv_dedupe_linked_pycs", **base) == 4
    assert value(m, "venv_dedupe_scanned_files", **base) == 40
    assert value(m, "venv_dedupe_errors", **base) == 1
    assert value(m, "venv_dedupe_skipped_venvs", **base) == 1
    assert value(m, "venv_dedupe_venvs", **base) == 0
    skipped = {dict(k)["reason"]: v for k, v in m["venv_dedupe_skipped_files"].samples.items()}
    assert skipped == {r.value: 0 for r in Reason} | {
        "per-install": 6,
        "symlink": 2,
        "from-a-newer-version": 1,
    }
    pycs = {dict(k)["reason"]: v for k, v in m["venv_dedupe_skipped_pycs"].samples.items()}
    assert pycs == {r.value: 0 for r in Reason} | {"pyc-stale": 2, "xattrs-differ": 1}
    unshared = {dict(k)["reason"]: v for k, v in m["venv_dedupe_unshared_pycs"].samples.items()}
    assert unshared == {"pyc-build-unknown": 3, "pyc-other-interpreter": 0}
    assert m["venv_dedupe_skipped_files"].label_names == ("command", "dry_run", "reason")
    # The example the issue gives, as one exact line.
    assert 'venv_dedupe_skipped_files{command="scan",dry_run="0",reason="symlink"} 2' in (
        text.splitlines()
    )
    store = {**base, "store": "/srv/store"}
    assert value(m, "venv_dedupe_store_objects", **store) == 12
    assert value(m, "venv_dedupe_store_damaged_objects", **store) == 2
    assert value(m, "venv_dedupe_store_unused_objects", **store) == 1
    assert value(m, "venv_dedupe_store_unused_bytes", **store) == 4096
    assert value(m, "venv_dedupe_store_allocated_bytes", **store) == 49152
    assert value(m, "venv_dedupe_store_saved_bytes", **store) == 81920


def test_only_stores_that_exist_get_figures() -> None:
    assert store_paths(scan_result()) == ("/srv/store",)
    assert store_paths(verify_result()) == ("/srv/store",)
    assert store_paths(gc_result()) == ("/srv/store",)


def test_verify_and_gc_give_theirs() -> None:
    m = read_prom(render(run("verify", succeeded=False), figures_of(verify_result())))
    assert value(m, "venv_dedupe_checked_objects", command="verify", dry_run="0") == 12
    assert value(m, "venv_dedupe_damaged_objects", command="verify", dry_run="0") == 1
    assert value(m, "venv_dedupe_errors", command="verify") == 0
    m = read_prom(render(run("gc", dry_run=True), figures_of(gc_result(dry_run=True))))
    assert value(m, "venv_dedupe_removed_objects", command="gc", dry_run="1") == 3
    assert value(m, "venv_dedupe_freed_bytes", command="gc", dry_run="1") == 12288
    assert "venv_dedupe_reclaimed_bytes" not in m


def test_a_success_sets_the_time_and_a_failure_keeps_the_previous_one() -> None:
    ok = read_prom(render(run()))
    assert value(ok, "venv_dedupe_last_run_success") == 1
    assert value(ok, "venv_dedupe_last_success_timestamp_seconds") == FINISHED
    assert value(ok, "venv_dedupe_last_run_duration_seconds") == 7.016

    failed = read_prom(render(run(succeeded=False)))
    assert value(failed, "venv_dedupe_last_run_success") == 0
    assert value(failed, "venv_dedupe_last_success_timestamp_seconds") == EARLIER

    never = read_prom(render(run(succeeded=False, last_success=None)))
    assert value(never, "venv_dedupe_last_success_timestamp_seconds") == 0


def test_a_run_that_raised_writes_only_the_run_itself() -> None:
    m = read_prom(render(run(succeeded=False)))
    assert sorted(m) == [
        "venv_dedupe_last_run_duration_seconds",
        "venv_dedupe_last_run_success",
        "venv_dedupe_last_success_timestamp_seconds",
    ]


def test_label_values_are_escaped_in_the_file() -> None:
    odd = '/srv/a\\b"c\nd'
    text = render(run("gc"), store_figures([usage(odd)]))
    line = 'venv_dedupe_store_objects{command="gc",dry_run="0",store="/srv/a\\\\b\\"c\\nd"} 12'
    assert line in text.splitlines()
    assert value(read_prom(text), "venv_dedupe_store_objects", store=odd) == 12
    # A name that is not UTF-8 is shown with escapes, as the text reports show it.
    text = render(run("gc"), store_figures([usage("/srv/\udcff")]))
    assert value(read_prom(text), "venv_dedupe_store_objects", store="/srv/\\udcff") == 12
    text.encode("utf-8")


def test_names_follow_the_naming_guide() -> None:
    names = [f.name for f in FAMILIES]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"venv_dedupe_[a-z]+(_[a-z]+)*", name), name
        assert not name.endswith("_total"), f"{name}: a gauge, not a counter"
        if "bytes" in name:
            assert name.endswith("_bytes"), name
        if "seconds" in name or "duration" in name or "timestamp" in name:
            assert name.endswith("_seconds"), name


def test_every_family_has_help_and_type_gauge_once() -> None:
    text = render(run(), figures_of(scan_result()) + store_figures([usage()]))
    helps = re.findall(r"^# HELP (\S+) ", text, re.M)
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    assert helps == [name for name, _ in types]
    assert {kind for _, kind in types} == {"gauge"}
    assert len(helps) == len(set(helps))


def test_the_three_commands_files_merge_as_node_exporter_merges_them() -> None:
    """node_exporter reads every *.prom of its folder into one set of metrics: the
    same series in two files, two HELP texts or two sets of label names for one name
    would fail the scrape."""
    files = [
        render(run("scan"), figures_of(scan_result()) + store_figures([usage()])),
        render(run("scan", dry_run=True), figures_of(scan_result(dry_run=True))),
        render(run("verify"), figures_of(verify_result()) + store_figures([usage()])),
        render(run("gc"), figures_of(gc_result()) + store_figures([usage()])),
    ]
    merged: dict[str, tuple[str, tuple[str, ...]]] = {}
    series: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    for text in files:
        for name, family in read_prom(text).items():
            assert merged.setdefault(name, (family.help, family.label_names)) == (
                family.help,
                family.label_names,
            ), name
            for labels in family.samples:
                assert (name, labels) not in series
                series.add((name, labels))
    assert len(series) > 100


def test_the_previous_file_gives_back_this_commands_last_success() -> None:
    scan_file = render(run("scan", finished_at=EARLIER))
    assert previous_run(scan_file, "scan", False).last_success == EARLIER
    assert previous_run(scan_file, "scan", False).others == ()
    # Another command's or a dry run's success is not this one's.
    elsewhere = previous_run(scan_file, "gc", False)
    assert (elsewhere.last_success, elsewhere.others) == (None, ("scan",))
    dry = previous_run(scan_file, "scan", True)
    assert (dry.last_success, dry.others) == (None, ("scan",))
    dry_file = render(run("gc", dry_run=True))
    assert previous_run(dry_file, "gc", False).others == ("gc --dry-run",)
    # A failed run with no success before it wrote 0: still no success known.
    never = render(run("scan", succeeded=False, last_success=None))
    assert previous_run(never, "scan", False).last_success is None
    assert previous_run("", "scan", False) == previous_run(never, "scan", False)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param("node_load1 0.5\n", "does not write: 'node_load1'", id="other-program"),
        pytest.param("venv_dedupe_errors 1 123\n", "timestamps", id="not-the-format"),
        pytest.param("<html>\n", "not a sample", id="not-metrics"),
    ],
)
def test_a_file_venv_dedupe_did_not_write_is_refused(text: str, complaint: str) -> None:
    with pytest.raises(ExpositionError, match=complaint):
        previous_run(text, "scan", False)


def test_a_figure_without_its_labels_is_a_bug_not_a_line() -> None:
    (objects, *_) = store_figures([usage()])
    with pytest.raises(ValueError, match="labels"):
        render(run(), [Figure(objects.family, 1)])
    with pytest.raises(ValueError, match="does not belong"):
        render(run(), [objects, objects])


def test_the_readmes_sample_is_what_render_writes() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("An excerpt after a scan:\n\n```\n") + len(
        "An excerpt after a scan:\n\n```\n"
    )
    sample = readme[start : readme.index("```", start)]
    shown = read_prom(sample)
    written = read_prom(render(run(), figures_of(scan_result()) + store_figures([usage()])))
    for name, family in shown.items():
        assert (family.help, family.label_names) == (
            written[name].help,
            written[name].label_names,
        ), name
