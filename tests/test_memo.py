"""Tests for dedupe.memo: a venv unchanged since the last scan is counted from its memo,
exactly as a full walk counts it, and any change that matters makes the scan walk it."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import CACHE_DIR, MakeVenvs, Venv, edit_in_place, pip, store_objects

from dedupe import ScanResult, gc, scan, verify
from dedupe.discovery import Venv as FoundVenv
from dedupe.discovery import find_venvs
from dedupe.memo import CANDIDATE, Memo, Memos, Trace, _body
from dedupe.scan.examine import Walk
from dedupe.store import open_store
from dedupe.tree import Tree

UTIL = "alpha/util.py"
BETA_ENGINE = "beta/engine.py"


def next_clock_tick(scratch: Path) -> None:
    """Wait until the filesystem's clock has moved past now, so that every change made
    before this call is older than the clock a later scan reads (see Memos.save)."""
    probe = scratch / "clock-probe"
    probe.touch()
    start = probe.stat().st_ctime_ns
    while probe.stat().st_ctime_ns == start:
        time.sleep(0.001)
        os.utime(probe)
    probe.unlink()


def settled_scan(root: Path, store: Path, scratch: Path) -> ScanResult:
    """Scan until nothing changes, then once more: each venv then has its memo."""
    scan([root], store=store)
    next_clock_tick(scratch)
    scan([root], store=store)  # walks the venvs the first run left without a memo
    return scan([root], store=store)


def counts(result: ScanResult) -> dict[str, object]:
    """Everything a scan reports except whether a venv came from its memo."""
    data = dataclasses.asdict(result)
    del data["venvs_unchanged"], data["dry_run"]
    for venv in data["venvs"]:
        del venv["unchanged"]
    return data


def unchanged(result: ScanResult) -> dict[str, bool]:
    return {Path(v.path).name: v.unchanged for v in result.venvs}


@pytest.fixture
def trio(make_venvs: MakeVenvs, venv_root: Path) -> tuple[Venv, ...]:
    """A (alpha 1.0 + beta 1.0), B (alpha 1.0), C (alpha 2.0): shared files, files that
    occur once (beta's, those alpha 2.0 changed), and pycs of both kinds."""
    return make_venvs(venv_root, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0"], c=["alpha==2.0"])


def test_unchanged_venvs_are_counted_from_their_memos_as_a_full_walk_counts_them(
    trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    remembered = settled_scan(venv_root, store_dir, tmp_path)

    assert unchanged(remembered) == {"a": True, "b": True, "c": True}
    assert remembered.venvs_unchanged == 3
    assert remembered.files_linked == 0 and remembered.files_unique > 0
    assert counts(remembered) == counts(scan([venv_root], store=store_dir, full=True))
    assert counts(remembered) == counts(scan([venv_root], store=store_dir, dry_run=True))
    assert len(list((store_dir / CACHE_DIR).iterdir())) == 3


def _as_walked(memo: Memo) -> Memo:
    # A walk lists candidates in RECORD order, a renewal by pass 2's parts: same records.
    records = sorted(CANDIDATE.iter_unpack(memo.candidates))
    return dataclasses.replace(memo, candidates=b"".join(CANDIDATE.pack(*r) for r in records))


def _walked_memo(venv: FoundVenv, store_dir: Path, share_pyc: bool) -> Memo:
    """The memo that a walk of the venv makes now (pass 1 of a --full run)."""
    store = open_store(str(store_dir), create=False)
    assert store is not None
    walker = Walk(venv, store.inodes(), share_pyc, None)
    with walker.tree:
        return _as_walked(walker.run())


@pytest.mark.parametrize("share_pyc", [True, False])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_linking_run_renews_each_memo_to_what_a_walk_finds_after_it(
    trio: tuple[Venv, ...],
    venv_root: Path,
    store_dir: Path,
    tmp_path: Path,
    share_pyc: bool,
    jobs: int,
) -> None:
    """Pass 2 links in every venv, moving its folders' stamps; the memo kept for the next
    run is pass 1's, renewed from what pass 2 changed, without a walk: it must say what a
    walk of the venv finds now, candidates, shared files and pycs, and pyc work alike."""
    next_clock_tick(tmp_path)  # the venvs' own stamps predate the scan's clock
    result = scan([venv_root], store=store_dir, share_pyc=share_pyc, jobs=jobs)
    assert result.files_linked > 0 and result.files_unique > 0
    # Without sharing, a pyc is rewritten for its linked source, or kept where the two
    # venvs were installed in the same second (its header's mtime is in seconds).
    pycs = result.pyc
    assert (pycs.linked if share_pyc else pycs.rewritten + pycs.kept_private) > 0

    store = open_store(str(store_dir), create=False)
    assert store is not None
    for venv in find_venvs([str(venv_root)]).venvs:
        memo = Memos(store).load(venv, share_pyc)
        assert memo is not None, venv.root  # renewed: every stamp matches now
        assert _as_walked(memo) == _walked_memo(venv, store_dir, share_pyc)
    rerun = scan([venv_root], store=store_dir, share_pyc=share_pyc)
    assert rerun.venvs_unchanged == 3 and rerun.files_linked == 0
    assert counts(rerun) == counts(
        scan([venv_root], store=store_dir, share_pyc=share_pyc, full=True)
    )


def test_a_folder_someone_changes_while_pass_2_links_costs_its_venv_the_memo(
    trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    """A file added to a folder of b after pass 1 listed it (here while pass 2 runs) is
    in no memo: the listing sum of b's folder is not what pass 1 found plus pass 2's
    own changes, so b gets no memo and the next run walks b and finds the file."""
    _a, b, _c = trio
    added = b.site_packages / "alpha" / "added.py"

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "link" and not added.exists():
            added.write_text("x = 1\n")

    next_clock_tick(tmp_path)
    scan([venv_root], store=store_dir, jobs=1, progress=progress)
    store = open_store(str(store_dir), create=False)
    assert store is not None
    remembered = {
        Path(v.root).name: Memos(store).load(v, True) is not None
        for v in find_venvs([str(venv_root)]).venvs
    }
    assert remembered == {"a": True, "b": False, "c": True}
    assert unchanged(scan([venv_root], store=store_dir)) == {"a": True, "b": False, "c": True}


def test_full_walks_every_venv(
    trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    settled_scan(venv_root, store_dir, tmp_path)
    assert scan([venv_root], store=store_dir, full=True).venvs_unchanged == 0


def test_a_new_copy_of_a_remembered_unique_file_is_linked(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    """beta occurs once, in A's memo only; a new venv with beta must still get it shared."""
    (a,) = make_venvs(venv_root, a=["alpha==1.0", "beta==1.0"])
    make_venvs(venv_root, b=["alpha==1.0"])
    remembered = settled_scan(venv_root, store_dir, tmp_path)
    assert remembered.venvs_unchanged == 2
    beta_ino = os.lstat(a.file(BETA_ENGINE)).st_ino
    assert os.lstat(a.file(BETA_ENGINE)).st_nlink == 1

    (d,) = make_venvs(venv_root, d=["beta==1.0"])
    result = scan([venv_root], store=store_dir)

    assert unchanged(result) == {"a": True, "b": True, "d": False}  # A from its memo...
    shared = os.lstat(a.file(BETA_ENGINE))
    assert os.lstat(d.file(BETA_ENGINE)).st_ino == shared.st_ino  # ...yet linked in pass 2
    assert shared.st_ino == beta_ino  # A's own inode became the object
    assert shared.st_ino in store_objects(store_dir)
    assert result.files_stored > 0 and result.files_linked > 0
    # A's memo was renewed after pass 2 adopted its file: the next runs take A from it
    # and count beta as shared, as a full walk does.
    next_clock_tick(tmp_path)
    after = scan([venv_root], store=store_dir)
    assert unchanged(after) == {"a": True, "b": True, "d": True}
    assert counts(after) == counts(scan([venv_root], store=store_dir, full=True))


def _uninstall_beta(a: Venv) -> None:
    pip(a, "uninstall", "-y", "-q", "beta")


def _new_file_in_a_package(a: Venv) -> None:
    (a.file("alpha") / "notes.txt").write_text("not in RECORD\n")


def _record_appended_in_place(a: Venv) -> None:
    (record,) = a.site_packages.glob("alpha-*.dist-info/RECORD")
    with record.open("a") as out:  # same inode: only the RECORD's own stamp shows it
        out.write("alpha/ghost.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n")


def _pyc_written_by_python(a: Venv) -> None:
    (pyc,) = (a.file("alpha") / "__pycache__").glob("util.*.pyc")
    pyc.unlink()
    subprocess.run(
        [str(a.python), "-c", "import alpha.util"],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},  # the suite may set it
        check=True,
    )
    assert pyc.exists()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_uninstall_beta, id="pip-uninstall"),
        pytest.param(_new_file_in_a_package, id="new-file"),
        pytest.param(_record_appended_in_place, id="record-edited-in-place"),
        pytest.param(_pyc_written_by_python, id="pyc-written-by-python"),
    ],
)
def test_a_changed_venv_is_walked_and_counted_as_a_full_walk_counts_it(
    change: object, trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    a, b, _c = trio
    settled_scan(venv_root, store_dir, tmp_path)

    assert callable(change)
    change(a)
    result = scan([venv_root], store=store_dir)

    assert unchanged(result) == {"a": False, "b": True, "c": True}
    if change is _pyc_written_by_python:  # walked, so the new pyc is shared again
        (new,) = (a.file("alpha") / "__pycache__").glob("util.*.pyc")
        (twin,) = (b.file("alpha") / "__pycache__").glob("util.*.pyc")
        assert os.lstat(new).st_ino == os.lstat(twin).st_ino
        assert result.pyc.linked == 1
    next_clock_tick(tmp_path)
    assert counts(scan([venv_root], store=store_dir)) == counts(
        scan([venv_root], store=store_dir, full=True)
    )


def test_a_damaged_memo_is_ignored(
    trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    remembered = settled_scan(venv_root, store_dir, tmp_path)
    memos = sorted((store_dir / CACHE_DIR).iterdir())
    memos[0].write_bytes(memos[0].read_bytes()[:-100])  # torn
    data = bytearray(memos[1].read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped
    memos[1].write_bytes(bytes(data))
    memos[2].write_text("not a memo")

    result = scan([venv_root], store=store_dir)

    assert result.venvs_unchanged == 0
    assert result.errors == () and result.warnings == ()
    assert counts(result) == counts(remembered)


def test_a_memo_is_kept_only_when_its_stamps_predate_the_clock(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    """A folder changed in the clock tick of its stamp could change again in that tick
    without moving its ctime: such a memo must not be kept (git calls it "racy")."""
    a, _b = pair
    settled_scan(venv_root, store_dir, tmp_path)
    store = open_store(str(store_dir), create=False)
    assert store is not None
    memos = Memos(store)
    (venv,) = (v for v in find_venvs([str(venv_root)]).venvs if v.root == str(a.path))
    memo = memos.load(venv, share_pyc=True)
    assert memo is not None
    with Tree(venv.root) as tree:
        trace = Trace(venv.root, tree.lstat)
        trace.stamp(os.path.relpath(a.site_packages, a.path))
    ctime = trace.stamps[0][5]

    assert not memos.save(venv, True, trace, ctime, memo)  # changed at the clock's reading
    assert memos.load(venv, share_pyc=True) is None
    assert memos.save(venv, True, trace, ctime + 1, memo)  # changed before it
    assert memos.load(venv, share_pyc=True) == memo
    assert memos.load(venv, share_pyc=False) is None  # pass 1 differs without pyc sharing


def test_a_dry_run_writes_no_memo(
    trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    scan([venv_root], store=store_dir)
    shutil.rmtree(store_dir / CACHE_DIR)
    next_clock_tick(tmp_path)
    result = scan([venv_root], store=store_dir, dry_run=True)
    assert result.venvs_unchanged == 0
    assert not (store_dir / CACHE_DIR).exists()


def test_gc_forgets_the_memos_of_removed_venvs(
    trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    _a, b, _c = trio
    settled_scan(venv_root, store_dir, tmp_path)
    shutil.rmtree(b.path)

    gc(store=store_dir)

    assert len(list((store_dir / CACHE_DIR).iterdir())) == 2
    assert scan([venv_root], store=store_dir).venvs_unchanged == 2


def test_verify_repair_forgets_every_memo(
    trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    """Repair moves a damaged object out of the store: the files linked to it are no
    longer shared, whatever the memos of their venvs say."""
    a, _b, _c = trio
    before = settled_scan(venv_root, store_dir, tmp_path)
    edit_in_place(a.file(UTIL))  # reaches a, b and c: util.py is the same in alpha 2.0

    verify([venv_root], store=store_dir, repair=True)

    assert not (store_dir / CACHE_DIR).exists()
    after = scan([venv_root], store=store_dir)
    assert after.venvs_unchanged == 0
    assert after.files_already_shared == before.files_already_shared - 3


def test_a_venv_without_a_record_gets_a_memo(
    trio: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    a, _b, _c = trio
    (record,) = a.site_packages.glob("beta-*.dist-info/RECORD")
    record.unlink()
    remembered = settled_scan(venv_root, store_dir, tmp_path)
    assert remembered.venvs_unchanged == 3
    assert remembered.skipped.get("missing-record") == 1
    assert [w.path for w in remembered.warnings] == [str(record)]  # said on every run


def test_hash_based_pycs_do_not_keep_a_venv_in_pass_2(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    """Checked-hash pycs (pip under SOURCE_DATE_EPOCH) of shared sources are never
    shared; the memo must not ask for pyc work on every run because of them."""
    make_venvs(venv_root, a=["alpha==1.0"])
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        (c,) = make_venvs(venv_root, c=["alpha==1.0"])
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    result = settled_scan(venv_root, store_dir, tmp_path)

    assert result.pyc.skipped.get("pyc-hash-based", 0) == 0  # not looked at again...
    store = open_store(str(store_dir), create=False)
    assert store is not None
    (venv,) = (v for v in find_venvs([str(venv_root)]).venvs if v.root == str(c.path))
    memo = Memos(store).load(venv, share_pyc=True)
    assert memo is not None and not memo.pyc_work  # ...since its memo asks for no pyc work
    full = scan([venv_root], store=store_dir, full=True)
    assert full.pyc.skipped.get("pyc-hash-based", 0) > 0  # a full walk does look


def test_a_memo_that_cannot_be_written_costs_only_the_memo(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    scan([venv_root], store=store_dir)
    shutil.rmtree(store_dir / CACHE_DIR, ignore_errors=True)
    (store_dir / CACHE_DIR).write_text("a file where the memo folder goes")
    next_clock_tick(tmp_path)

    for _ in range(2):
        result = scan([venv_root], store=store_dir)
        assert result.errors == () and result.venvs_unchanged == 0
    assert result.files_already_shared > 0


def test_a_memo_body_is_the_json_of_its_parts() -> None:
    memo = Memo(
        scanned=3,
        eligible=2,
        shared=1,
        pyc_scanned=4,
        pyc_shared=0,
        pyc_work=True,
        skipped={"no-hash": 1},
        warnings=(("/v/RECORD", 'a "quoted" problem'),),
        candidates=CANDIDATE.pack(b"k" * 16, 7, False) * 2,
        notes=("a note",),
    )
    stamps = [("lib", 1, 2, 3, 4, 5), ("", 1, 9, 8, 7, 6)]
    body = json.loads(b"".join(_body({"root": "/v"}, stamps, {"lib": 2**63}, memo)))
    fields = dataclasses.asdict(memo)
    fields["candidates"] = base64.b64encode(memo.candidates).decode("ascii")
    assert body == json.loads(
        json.dumps(
            {"identity": {"root": "/v"}, "stamps": stamps, "sums": {"lib": 2**63}, "memo": fields}
        )
    )
