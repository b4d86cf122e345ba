"""Tests for dedupe.scan on one realistic tree: what is shared, what is not, and what it costs.

The scenario (built once for this module, since pip installs dominate the suite's time):
venvs A (alpha 1.0 + beta 1.0), B and C (alpha 1.0) and D (alpha 2.0 + beta 1.0) under
one root; then a dry run, a real run and a rerun, with the tree's state recorded around
each. The tests below each check one property of that history.
"""

from __future__ import annotations

import gc
import hashlib
import os
import shutil
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from helpers import (
    TEMP_PREFIX,
    MakeVenvs,
    PathState,
    Usage,
    Venv,
    create_venvs,
    disk_usage,
    inodes,
    loop_filesystem_at,
    pyc_freshness,
    run_console_script,
    run_python,
    saving_of_objects,
    snapshot,
    snapshot_diff,
    source_of_pyc,
    store_content_folders,
    store_objects,
    temp_leftovers,
    wheel_files,
)

from dedupe import ScanResult, UsageError, scan, status
from dedupe.report.scan import render_text
from dedupe.text import human_size

# Files whose bytes are the same in alpha 1.0 and 2.0 (see wheelbuilder.alpha).
SAME_IN_BOTH_VERSIONS = ("alpha/util.py", "alpha/data/table.csv")
# Files that differ between alpha 1.0 and 2.0.
DIFFER_BETWEEN_VERSIONS = ("alpha/core.py", "alpha/cli.py", "alpha/__init__.py")
BETA_FILES = ("beta/engine.py", "beta/__init__.py")

# The scenario's venvs and what pip installs in each.
REQUIREMENTS = {
    "a": ["alpha==1.0", "beta==1.0"],
    "b": ["alpha==1.0"],
    "c": ["alpha==1.0"],
    "d": ["alpha==2.0", "beta==1.0"],
}
INSTALLS = [requirement for reqs in REQUIREMENTS.values() for requirement in reqs]


def copies_of_each_content(wheelhouse: Path, suffix: str = "") -> Counter[bytes]:
    """How many of the scenario's installed files (those ending in suffix) hold each
    content: the files the wheels install, empty ones left out (never worth linking)."""
    return Counter(
        data
        for requirement in INSTALLS
        for path, data in wheel_files(wheelhouse, requirement).items()
        if data and path.endswith(suffix)
    )


@dataclass(frozen=True)
class Scenario:
    """The tree, the three results, and the tree's state before and after each run."""

    root: Path
    store: Path
    venvs: dict[str, Venv]
    # Before any run.
    before: dict[str, PathState]
    inodes_before: dict[str, tuple[int, int]]
    usage_before: Usage
    pycs_fresh_before: dict[str, bool]
    # The dry run.
    dry: ScanResult
    dry_as_returned: dict[str, object]  # a deep copy, taken before the next run
    after_dry: dict[str, PathState]
    inodes_after_dry: dict[str, tuple[int, int]]
    objects_after_dry: int
    # The real run.
    real: ScanResult
    real_as_returned: dict[str, object]
    after_real: dict[str, PathState]
    inodes_after_real: dict[str, tuple[int, int]]
    usage_after: Usage
    pycs_fresh_after_real: dict[str, bool]
    # The rerun.
    rerun: ScanResult
    after_rerun: dict[str, PathState]
    inodes_after_rerun: dict[str, tuple[int, int]]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Scenario:
    base = tmp_path_factory.mktemp("scan")
    root, store = base / "venvs", base / "store"
    built = create_venvs(wheelhouse, root, **REQUIREMENTS)
    venvs = dict(zip(REQUIREMENTS, built, strict=True))
    before, inodes_before = snapshot(root), inodes(root)
    pycs_fresh_before = pyc_freshness(root)
    usage_before = disk_usage(root, *store_content_folders(store))

    dry = scan([root], store=store, dry_run=True)
    dry_as_returned = asdict(dry)
    after_dry, inodes_after_dry = snapshot(root), inodes(root)
    # Every file in any of the store's folders (source objects, pyc objects, ...).
    objects_after_dry = sum(len(inodes(folder)) for folder in store_content_folders(store))

    real = scan([root], store=store)
    real_as_returned = asdict(real)
    after_real, inodes_after_real = snapshot(root), inodes(root)
    usage_after = disk_usage(root, *store_content_folders(store))
    pycs_fresh_after_real = pyc_freshness(root)

    rerun = scan([root], store=store)
    return Scenario(
        root=root,
        store=store,
        venvs=venvs,
        before=before,
        inodes_before=inodes_before,
        usage_before=usage_before,
        pycs_fresh_before=pycs_fresh_before,
        dry=dry,
        dry_as_returned=dry_as_returned,
        after_dry=after_dry,
        inodes_after_dry=inodes_after_dry,
        objects_after_dry=objects_after_dry,
        real=real,
        real_as_returned=real_as_returned,
        after_real=after_real,
        inodes_after_real=inodes_after_real,
        usage_after=usage_after,
        pycs_fresh_after_real=pycs_fresh_after_real,
        rerun=rerun,
        after_rerun=snapshot(root),
        inodes_after_rerun=inodes(root),
    )


def stat_of(venv: Venv, relpath: str) -> os.stat_result:
    return os.lstat(venv.file(relpath))


def key(scenario: Scenario, path: Path) -> str:
    """A path as the snapshots name it: relative to the scanned root."""
    return str(path.relative_to(scenario.root))


PYC_TAG = sys.implementation.cache_tag  # the venvs are made by the interpreter running pytest


@pytest.mark.parametrize("relpath", DIFFER_BETWEEN_VERSIONS + SAME_IN_BOTH_VERSIONS)
def test_alpha_1_files_of_a_b_c_share_the_store_object(scenario: Scenario, relpath: str) -> None:
    a, b, c = (stat_of(scenario.venvs[name], relpath) for name in "abc")
    assert a.st_ino == b.st_ino == c.st_ino
    objects = store_objects(scenario.store)
    assert a.st_ino in objects, f"{relpath} of A is not a store object's inode"
    # The object is named by the sha256 of the content: objects/sha256/<2 hex>/<rest>...
    digest = hashlib.sha256(scenario.venvs["a"].file(relpath).read_bytes()).hexdigest()
    obj = objects[a.st_ino]
    assert obj.parent.parent.name == "sha256"
    assert obj.parent.name == digest[:2]
    assert obj.name.startswith(digest[2:])


@pytest.mark.parametrize("relpath", DIFFER_BETWEEN_VERSIONS)
def test_files_shared_by_three_venvs_have_four_links(scenario: Scenario, relpath: str) -> None:
    # A, B, C and the store object.
    assert stat_of(scenario.venvs["a"], relpath).st_nlink == 4


@pytest.mark.parametrize("relpath", DIFFER_BETWEEN_VERSIONS)
def test_files_that_differ_in_alpha_2_keep_their_own_inode(
    scenario: Scenario, relpath: str
) -> None:
    d = stat_of(scenario.venvs["d"], relpath)
    a = stat_of(scenario.venvs["a"], relpath)
    assert d.st_ino != a.st_ino
    # D's copy is the only one of its content: nothing but (perhaps) its store object links it.
    assert d.st_nlink <= 2
    path = key(scenario, scenario.venvs["d"].file(relpath))
    assert scenario.after_real[path] == scenario.before[path]


@pytest.mark.parametrize("relpath", SAME_IN_BOTH_VERSIONS)
def test_files_identical_in_both_versions_are_shared_by_all_four(
    scenario: Scenario, relpath: str
) -> None:
    stats = [stat_of(scenario.venvs[name], relpath) for name in "abcd"]
    assert len({st.st_ino for st in stats}) == 1
    assert stats[0].st_nlink == 5  # four venvs and the store object


@pytest.mark.parametrize("relpath", BETA_FILES)
def test_beta_is_shared_between_venvs_with_different_alpha(
    scenario: Scenario, relpath: str
) -> None:
    a, d = (stat_of(scenario.venvs[name], relpath) for name in "ad")
    assert a.st_ino == d.st_ino
    assert a.st_nlink == 3


@pytest.mark.parametrize(
    ("in_site_packages", "relpath"),
    [
        pytest.param(False, "pyvenv.cfg", id="pyvenv.cfg"),
        pytest.param(False, "bin/alpha-cli", id="console-script"),
        pytest.param(False, "bin/activate", id="activate"),
        pytest.param(True, "alpha-1.0.dist-info/RECORD", id="RECORD"),
        pytest.param(True, "alpha-1.0.dist-info/INSTALLER", id="INSTALLER"),
        pytest.param(True, "alpha-1.0.dist-info/REQUESTED", id="REQUESTED"),
        pytest.param(True, "alpha/py.typed", id="zero-bytes"),
    ],
)
def test_per_install_and_zero_byte_files_are_not_linked(
    scenario: Scenario, in_site_packages: bool, relpath: str
) -> None:
    # B and C have the same alpha, so their INSTALLER and py.typed bytes are equal:
    # only the skip rules keep them apart.
    for name in "bc":
        venv = scenario.venvs[name]
        path = venv.file(relpath) if in_site_packages else venv.path / relpath
        assert os.lstat(path).st_nlink == 1, key(scenario, path)
        assert (
            scenario.inodes_after_real[key(scenario, path)]
            == scenario.inodes_before[key(scenario, path)]
        )


def test_skip_reasons_are_counted(scenario: Scenario, wheelhouse: Path) -> None:
    """pip writes RECORD, INSTALLER and REQUESTED for each of the 6 installs, and each
    alpha install's alpha-cli script (4): 22 per-install files. alpha's py.typed, empty,
    is in the 4 venvs: 4 zero-byte files. Nothing else is skipped."""
    zero_bytes = sum(
        not data
        for requirement in INSTALLS
        for data in wheel_files(wheelhouse, requirement).values()
    )
    scripts = sum(requirement.startswith("alpha==") for requirement in INSTALLS)
    expected = {"per-install": 3 * len(INSTALLS) + scripts, "zero-bytes": zero_bytes}
    assert scenario.real.skipped == expected == {"per-install": 22, "zero-bytes": 4}
    assert scenario.real.errors == ()
    assert scenario.real.warnings == ()
    assert scenario.real.skipped_venvs == ()


def test_venv_reports_cover_every_venv(scenario: Scenario) -> None:
    reported = {os.path.realpath(report.path) for report in scenario.real.venvs}
    assert reported == {os.path.realpath(venv.path) for venv in scenario.venvs.values()}


@pytest.mark.parametrize(
    "figure",
    [
        "files_scanned",
        "files_eligible",
        "files_linked",
        "files_already_shared",
        "bytes_reclaimed",
        "apparent_bytes_reclaimed",
    ],
)
def test_venv_figures_add_up_to_the_totals(scenario: Scenario, figure: str) -> None:
    """A report whose parts do not add up to its total misleads whoever reads either."""
    per_venv = {Path(r.path).name: getattr(r, figure) for r in scenario.real.venvs}
    assert sum(per_venv.values()) == getattr(scenario.real, figure), per_venv


def test_scan_changes_nothing_but_sharing(scenario: Scenario) -> None:
    """Invariant 1: same paths, types, bytes, modes and owners after every run."""
    assert snapshot_diff(scenario.before, scenario.after_real) == []
    assert snapshot_diff(scenario.before, scenario.after_rerun) == []
    assert temp_leftovers(scenario.root) == []


@pytest.mark.parametrize("name", "abcd")
def test_every_venv_imports_and_runs_after_scan(scenario: Scenario, name: str) -> None:
    venv = scenario.venvs[name]
    version = "2.0" if name == "d" else "1.0"
    output = run_python(
        venv,
        "import importlib.resources, alpha, alpha.core, alpha.util, alpha.cli\n"
        "data = importlib.resources.files('alpha').joinpath('data/table.csv').read_text()\n"
        "print(alpha.__version__, alpha.core.table_size() > 0, alpha.util.double(2),"
        " data.splitlines()[0])\n"
        "print(alpha.core.answer.__code__.co_filename)\n",
    )
    *values, code_filename = output.splitlines()
    assert " ".join(values).split() == [version, "True", "4", "key,value,weight"]
    # Tracebacks name this venv's own file, even when the pyc is shared with other venvs.
    assert os.path.realpath(code_filename) == os.path.realpath(venv.file("alpha/core.py"))
    assert run_console_script(venv, "alpha-cli").split() == ["alpha-cli", version, "42", "42"]
    if name in "ad":
        assert run_python(venv, "import beta.engine; print(beta.engine.run())").strip() == "43"


def test_pycs_fresh_before_are_fresh_after(scenario: Scenario) -> None:
    """Linking a source gives it the store object's mtime; its pycs must follow.

    Otherwise every import recompiles (and, where __pycache__ is not writable, on every
    run): the scan would make the venvs slower instead of only smaller.
    """
    assert scenario.pycs_fresh_before, "precondition: pip compiled timestamp pycs"
    stale = [
        pyc
        for pyc, fresh in scenario.pycs_fresh_before.items()
        if fresh and not scenario.pycs_fresh_after_real.get(pyc, False)
    ]
    assert stale == []


def test_a_shared_pyc_only_serves_venvs_whose_source_is_the_same_inode(
    scenario: Scenario,
) -> None:
    """DESIGN: one pyc may serve every venv whose source is the same inode, no other."""
    pycs_by_inode: dict[tuple[int, int], list[str]] = {}
    for relpath, number in scenario.inodes_after_real.items():
        if relpath.endswith(".pyc"):
            pycs_by_inode.setdefault(number, []).append(relpath)
    for pycs in pycs_by_inode.values():
        sources = {scenario.inodes_after_real[str(source_of_pyc(Path(pyc)))] for pyc in pycs}
        assert len(sources) == 1, pycs


def test_dry_run_changes_nothing(scenario: Scenario) -> None:
    assert scenario.dry.dry_run is True
    assert snapshot_diff(scenario.before, scenario.after_dry) == []
    assert scenario.inodes_after_dry == scenario.inodes_before
    assert scenario.objects_after_dry == 0


def _figures(result: ScanResult) -> dict[str, object]:
    names = (
        "files_scanned",
        "files_eligible",
        "files_linked",
        "files_stored",
        "files_already_shared",
        "files_linked_without_gain",
        "bytes_reclaimed",
        "apparent_bytes_reclaimed",
        "skipped",
    )
    return {name: getattr(result, name) for name in names}


def test_dry_run_reports_what_the_real_run_does(scenario: Scenario) -> None:
    """Invariant 7: the dry run plans with the same code, so its figures are the real ones."""
    assert scenario.real.dry_run is False
    assert _figures(scenario.dry) == _figures(scenario.real)
    assert [r.files_linked for r in scenario.dry.venvs] == [
        r.files_linked for r in scenario.real.venvs
    ]


def test_real_run_links_every_copy_but_one_of_each_content(
    scenario: Scenario, wheelhouse: Path
) -> None:
    """Of the n >= 2 eligible files with one content, one becomes the store object and
    n - 1 are linked to it; a content that one file alone has stays as it is.

    From the wheels: alpha 1.0's __init__.py, core.py, cli.py and METADATA are in A, B
    and C (4 contents, 2 links each); util.py, table.csv and entry_points.txt, the same in
    both alpha versions, are in all four venvs (3 contents, 3 links each); WHEEL, the same
    in every wheel, is in all six dist-infos (5 links); beta's __init__.py, engine.py and
    METADATA are in A and D (3 contents, 1 link each): 25 links to 11 objects. alpha
    2.0's __init__.py, core.py, cli.py and METADATA are D's alone: 4 unique.
    """
    copies = copies_of_each_content(wheelhouse)
    shared = [n for n in copies.values() if n > 1]
    real = scenario.real
    assert (
        (real.files_eligible, real.files_linked, real.files_stored, real.files_unique)
        == (
            sum(copies.values()),
            sum(n - 1 for n in shared),
            len(shared),
            len(copies) - len(shared),
        )
        == (40, 25, 11, 4)
    )
    assert (real.files_already_shared, real.files_linked_without_gain) == (0, 0)
    assert real.bytes_reclaimed > 0
    assert real.apparent_bytes_reclaimed > 0


def test_real_run_shares_the_pycs_of_every_shared_source(
    scenario: Scenario, wheelhouse: Path
) -> None:
    """pip compiles one pyc per module. The pycs of a shared source's n copies become one
    object and n - 1 links: alpha 1.0's __init__, core and cli in A, B and C (2 links
    each), util in all four (3), beta's two modules in A and D (1 each): 11 links to 6
    objects. alpha 2.0's three other modules are D's alone: their pycs stay."""
    copies = copies_of_each_content(wheelhouse, ".py")
    shared = [n for n in copies.values() if n > 1]
    pyc = scenario.real.pyc
    assert (
        (pyc.scanned, pyc.linked, pyc.stored, pyc.skipped)
        == (
            sum(copies.values()),
            sum(n - 1 for n in shared),
            len(shared),
            {"pyc-source-not-shared": len(copies) - len(shared)},
        )
        == (20, 11, 6, {"pyc-source-not-shared": 3})
    )
    assert (pyc.already_shared, pyc.rewritten, pyc.kept_private) == (0, 0, 0)


def test_bytes_reclaimed_matches_the_change_in_allocated_blocks(scenario: Scenario) -> None:
    """What du shows for the files: allocated bytes of unique inodes, before - after.

    Counted over the root and the store's object folders: every inode a venv file had
    or now shares. The store's own lock/FORMAT files and folders are its overhead, not
    reclaimed or spent file content.
    """
    freed = scenario.usage_before.allocated - scenario.usage_after.allocated
    assert scenario.real.bytes_reclaimed == freed
    apparent_freed = scenario.usage_before.apparent - scenario.usage_after.apparent
    assert scenario.real.apparent_bytes_reclaimed == apparent_freed


def test_rerun_links_nothing(scenario: Scenario) -> None:
    rerun, real = scenario.rerun, scenario.real
    assert rerun.files_linked == 0
    assert rerun.bytes_reclaimed == 0
    assert rerun.apparent_bytes_reclaimed == 0
    assert rerun.files_already_shared == real.files_linked + real.files_stored
    assert scenario.inodes_after_rerun == scenario.inodes_after_real


def test_store_report_counts_objects(scenario: Scenario) -> None:
    (store,) = scenario.real.stores
    assert os.path.realpath(store.path) == os.path.realpath(scenario.store)
    assert store.objects == len(store_objects(scenario.store))


def test_store_figures_stay_exact_over_reruns_and_a_removed_venv(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path
) -> None:
    # What a scan says of the store is what a listing gives; what sharing saves and how
    # many objects no venv uses (which a venv removed anywhere changes) is status's, from
    # a stat of every object. Both must equal a full stat of the store at every step.
    *_alphas, c, d = make_venvs(
        venv_root, a=["alpha==1.0"], b=["alpha==1.0"], c=["beta==1.0"], d=["beta==1.0"]
    )

    def full_stat() -> tuple[int, int, int]:
        found = [os.lstat(p) for p in store_objects(store_dir).values()]
        unused = sum(st.st_nlink == 1 for st in found)
        return len(found), unused, saving_of_objects(store_dir)

    def reported(result: ScanResult) -> tuple[int, int, int]:
        (store,) = result.stores
        now = status([venv_root], store=store_dir)
        return store.objects, now.unused_objects, now.bytes_saved

    first = scan([venv_root], store=store_dir)
    assert first.files_linked > 0
    assert reported(first) == full_stat()
    before = full_stat()
    rerun = scan([venv_root], store=store_dir)
    assert rerun.venvs_unchanged == 4 and rerun.files_linked == 0
    assert reported(rerun) == full_stat() == before

    # beta's objects keep one venv name (they save nothing), then none (unused).
    for gone, left in ((c, 3), (d, 2)):
        shutil.rmtree(gone.path)
        after = scan([venv_root], store=store_dir)
        assert after.files_linked == 0 and len(after.venvs) == left
        assert reported(after) == full_stat()
    objects, unused, saved = full_stat()
    assert objects == before[0]  # nothing was added or collected
    assert unused > before[1] == 0 and saved < before[2]


def test_a_result_does_not_change_when_later_scans_run(scenario: Scenario) -> None:
    """A result is the scan's record of what it did: the runs after it (the real run after
    the dry run, the rerun after both) must not reach into it. A count dict or list shared
    with the scan's working state, or with a later scan's, would change under the caller."""
    assert asdict(scenario.dry) == scenario.dry_as_returned
    assert asdict(scenario.real) == scenario.real_as_returned


def test_a_scan_runs_without_the_cyclic_collector_and_leaves_no_cycles(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """The scan pauses the collector for its speed, and enables it again when it ends.

    The test leaves the collector as pytest runs it (enabled) and looks from inside the
    scan, through its progress callback, which the scan calls in this process. Pausing is
    only free of cost while the scan makes no garbage that only the collector could
    free: every collection from the scan's start to after it, including the one the
    collector runs itself once enabled again, finds nothing.
    """
    seen_during: list[bool] = []
    found: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            found.append(info["collected"] + info["uncollectable"])

    gc.collect()  # the garbage of the tests before this one
    assert gc.isenabled(), "precondition: pytest runs with the collector enabled"
    gc.callbacks.append(count)
    try:
        result = scan(
            [venv_root],
            store=store_dir,
            jobs=1,
            progress=lambda *_: seen_during.append(gc.isenabled()),
        )
        enabled_after = gc.isenabled()
        gc.collect()
    finally:
        gc.callbacks.remove(count)
    assert seen_during and set(seen_during) == {False}, seen_during
    assert enabled_after
    assert sum(found) == 0, found
    # A and B have the same alpha 1.0: its 8 non-empty files and its 4 modules' pycs are
    # shared, one copy of each linked to the other's object.
    assert (result.files_linked, result.files_stored, result.pyc.linked) == (8, 8, 4)

    # With workers (the default jobs), progress is still told in this process.
    seen_during.clear()
    scan([venv_root], store=store_dir, progress=lambda *_: seen_during.append(gc.isenabled()))
    assert seen_during and set(seen_during) == {False}, seen_during
    assert gc.isenabled()


def test_a_failed_scan_enables_the_collector_again(venv_root: Path, store_dir: Path) -> None:
    assert gc.isenabled(), "precondition: pytest runs with the collector enabled"
    with pytest.raises(UsageError, match="jobs must be at least 1"):
        scan([venv_root], store=store_dir, jobs=0)
    assert gc.isenabled()


# The shortest temp name a run gives a venv file (dedupe.link.steps: the prefix, 16 hex
# digits, a dot and a counter): a folder with no room for it has room for none.
SHORTEST_TEMP_NAME = TEMP_PREFIX + "0" * 16 + ".0"


def fill_up(folder: Path, twin: Path) -> None:
    """Rebuild folder, name by name, with filler names until it has no room for one more
    temp name: ext4 lays the same names, made in the same order, out the same way, so a
    twin made alongside tells when that is (a name tried there, and removed while it fits,
    leaves the layout as it was)."""
    names = sorted(os.listdir(folder))
    twin.mkdir()
    for name in names:
        (twin / name).touch()
    fillers: list[str] = []
    while len(fillers) < 1000:
        fillers.append(f"filler-{len(fillers)}")
        (twin / fillers[-1]).touch()
        blocks = os.lstat(twin).st_blocks
        (twin / SHORTEST_TEMP_NAME).touch()
        if os.lstat(twin).st_blocks > blocks:
            break
        (twin / SHORTEST_TEMP_NAME).unlink()
    else:
        pytest.fail(f"{twin} never filled up")
    rebuilt = folder.with_name(folder.name + ".rebuilt")
    rebuilt.mkdir(mode=folder.stat().st_mode & 0o7777)
    for name in names:
        os.rename(folder / name, rebuilt / name)
    for filler in fillers:
        (rebuilt / filler).touch()
    folder.rmdir()
    os.rename(rebuilt, folder)


def folder_blocks(top: Path) -> dict[str, int]:
    return {str(path): os.lstat(path).st_blocks for path in [top, *top.rglob("*")] if path.is_dir()}


@pytest.mark.parametrize("jobs", [1, 2])
def test_what_temp_names_add_to_full_folders_is_reported(
    make_venvs: MakeVenvs, tmp_path: Path, jobs: int
) -> None:
    # ext4 gives a folder that has no room for a temp name a new block, and keeps it
    # after the temp name is gone: du sees the reclaimed bytes less that block.
    mount = tmp_path / "ext4"
    mount.mkdir()
    with loop_filesystem_at(mount, tmp_path / "ext4.img", "ext4"):
        a, b = make_venvs(mount / "venvs", a=["alpha==1.0"], b=["alpha==1.0"])
        full = b.site_packages / "alpha"
        fill_up(full, mount / "twin")
        before = folder_blocks(mount / "venvs")
        result = scan([mount / "venvs"], store=mount / "store", jobs=jobs)
        after = folder_blocks(mount / "venvs")
    assert result.files_linked == 8 and not result.errors
    grew = {path: after[path] - before[path] for path in after if after[path] != before[path]}
    assert grew.get(str(full), 0) * 512 >= 4096, grew
    assert result.folder_growth_bytes == sum(grew.values()) * 512
    assert f"the venvs' folders grew by {human_size(result.folder_growth_bytes)}" in (
        render_text(result)
    )
