"""Tests for dedupe.link.reflinks and the scan's reflink mode, on real loop-mounted XFS
and btrfs filesystems: data blocks are shared with the store while every file keeps its
inode, owner, mode, times and bytes, owners do not split groups, pycs stay valid, and a
dry run counts what the real run frees.

The scenario (built once per filesystem, since pip installs dominate): venvs a and b
(alpha 1.0 + beta 1.0) and c (the same, owned by another user), a dry run, a real run
and a rerun, with the tree's state and the free space recorded around each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultkit import leftovers, run_child, without_leftovers
from helpers import (
    COW_FILESYSTEMS,
    PathState,
    Venv,
    create_venvs,
    free_bytes,
    loop_filesystem_at,
    pyc_code_only,
    pyc_freshness,
    run_cli,
    run_python,
    shares_blocks,
    snapshot,
    snapshot_diff,
    store_objects,
)

from dedupe import ScanResult, detach, gc, scan, status, verify
from dedupe.bytecode import parse_header
from dedupe.link import steps
from dedupe.tree import At

BLOCK = 4096
OTHER_UID = 65534  # nobody
SOURCES = ("alpha/core.py", "alpha/util.py", "alpha/data/table.csv", "beta/engine.py")


@dataclass(frozen=True)
class History:
    kind: str  # the filesystem
    root: Path
    store: Path
    venvs: tuple[Venv, ...]
    before: dict[str, PathState]
    stats_before: dict[str, os.stat_result]
    fresh_before: dict[str, bool]
    dry: ScanResult
    real: ScanResult
    rerun: ScanResult
    freed: int  # free space after the real run less before it


def _stats(top: Path) -> dict[str, os.stat_result]:
    return {
        str(p.relative_to(top)): p.lstat()
        for p in top.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture(scope="module", params=COW_FILESYSTEMS)
def history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path
) -> Iterator[History]:
    base = tmp_path_factory.mktemp(f"reflinks-{request.param}")
    mount = base / "mnt"
    mount.mkdir()
    with loop_filesystem_at(mount, base / "fs.img", request.param):
        root = mount / "venvs"
        store = mount / "store"
        reqs = ["alpha==1.0", "beta==1.0"]
        venvs = create_venvs(wheelhouse, root, a=reqs, b=reqs, c=reqs)
        for path in [venvs[2].path, *venvs[2].path.rglob("*")]:
            os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)
        before, stats_before = snapshot(root), _stats(root)
        fresh_before = pyc_freshness(root)
        dry = scan([root], store=store, dry_run=True, jobs=1)
        free = free_bytes(mount)
        real = scan([root], store=store, jobs=1)
        freed = free_bytes(mount) - free
        rerun = scan([root], store=store, jobs=1)
        yield History(
            request.param,
            root,
            store,
            venvs,
            before,
            stats_before,
            fresh_before,
            dry,
            real,
            rerun,
            freed,
        )


def test_the_store_uses_reflinks(history: History) -> None:
    (store,) = history.real.stores
    assert store.link_mode == "reflink"
    assert history.real.errors == ()
    assert history.real.files_stored > 0 and history.real.files_linked > 0


def test_every_file_keeps_its_bytes_owner_and_mode(history: History) -> None:
    """Every file keeps its bytes, owner and mode; a pyc keeps its magic number and code."""
    after = pyc_code_only(snapshot(history.root))
    before = pyc_code_only(history.before)
    assert after == before, snapshot_diff(before, after)


def test_every_source_keeps_its_inode_and_times(history: History) -> None:
    """Only pycs are replaced (by equivalent pycs); every other file is its own inode,
    with the mtime and ctime it had: nothing was written to it."""
    after = _stats(history.root)
    for rel, st in history.stats_before.items():
        if rel.endswith(".pyc"):
            continue
        now = after[rel]
        assert (now.st_ino, now.st_mtime_ns, now.st_ctime_ns, now.st_nlink) == (
            st.st_ino,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_nlink,
        ), rel


def test_sources_share_blocks_across_owners(history: History) -> None:
    a, b, c = history.venvs
    assert c.file(SOURCES[0]).stat().st_uid == OTHER_UID
    for rel in SOURCES:
        assert shares_blocks(a.file(rel), b.file(rel)), rel
        assert shares_blocks(a.file(rel), c.file(rel)), rel


def test_pycs_become_checked_hash_pycs_sharing_every_block(history: History) -> None:
    """Each venv's pyc is now the group's checked hash-based pyc (its header names no
    mtime, so one pyc is valid for every venv's copy of the source), whole: every block,
    the first too, and pycs of one block. btrfs keeps files of up to 2 KiB inline in its
    metadata, where nothing is shared (inline-data)."""
    a, b, c = history.venvs
    pycs = list(a.path.rglob("__pycache__/*.pyc"))
    assert any(p.stat().st_size > BLOCK for p in pycs)
    assert any(p.stat().st_size <= BLOCK for p in pycs)
    inline = history.kind == "btrfs"
    for pyc in pycs:
        rel = str(pyc.relative_to(a.path))
        if inline and pyc.stat().st_size <= 2048:
            continue  # left as it was
        assert parse_header(pyc.read_bytes()[:16]).flags == 0b11, rel
        assert shares_blocks(pyc, b.path / rel), rel
        assert shares_blocks(pyc, c.path / rel), rel
        assert (c.path / rel).stat().st_uid == OTHER_UID
    assert history.real.pyc.skipped.get("pyc-one-block") is None


def test_pycs_stay_valid_and_nothing_recompiles(history: History) -> None:
    fresh = pyc_freshness(history.root)
    assert fresh == history.fresh_before and all(fresh.values())
    c = history.venvs[2]
    pycs = {p: p.stat().st_ino for p in c.path.rglob("*.pyc")}
    run_python(
        c, "import sys; sys.dont_write_bytecode = False; import alpha.core, alpha.util, beta.engine"
    )
    assert {p: p.stat().st_ino for p in c.path.rglob("*.pyc")} == pycs


def test_dry_run_counts_what_the_real_run_does(history: History) -> None:
    dry, real = history.dry, history.real
    assert dry.bytes_reclaimed == real.bytes_reclaimed > 0
    assert (dry.files_linked, dry.files_stored) == (real.files_linked, real.files_stored)
    assert dry.pyc == real.pyc


def test_free_space_grows_by_what_the_run_reports(history: History) -> None:
    """Copy-on-write gains do not show in du, only in free space. The filesystem's own
    metadata (refcount and extent trees) moves too: within 10% or 1 MiB."""
    net = history.real.bytes_reclaimed - history.real.store_overhead_bytes
    assert abs(history.freed - net) <= max(net // 10, 1 << 20), (history.freed, net)


def test_a_rerun_takes_the_venvs_from_their_memos(history: History) -> None:
    rerun, real = history.rerun, history.real
    assert rerun.venvs_unchanged == len(history.venvs)
    assert (rerun.files_linked, rerun.files_stored, rerun.bytes_reclaimed) == (0, 0, 0)
    assert rerun.files_already_shared == real.files_linked + real.files_stored
    assert rerun.pyc.linked == 0
    # The memos, renewed from what the real run did, count the pycs it shared as a
    # full walk finds them (FIEMAP: sharing their objects' blocks).
    assert rerun.pyc.already_shared == real.pyc.linked + real.pyc.stored > 0


def test_a_full_rerun_knows_shared_blocks_without_reading(history: History) -> None:
    """With every venv walked again, pass 2 tells from the extents alone (FIEMAP) that
    each file and pyc already shares its object's blocks."""
    real = history.real
    full = scan([history.root], store=history.store, dry_run=True, full=True, jobs=1)
    assert (full.files_linked, full.files_stored, full.bytes_reclaimed) == (0, 0, 0)
    assert full.files_already_shared == real.files_linked + real.files_stored
    assert full.pyc.linked == 0
    assert full.pyc.already_shared == real.pyc.linked + real.pyc.stored


def test_the_store_holds_its_own_copies(history: History) -> None:
    objects = store_objects(history.store)
    assert objects
    for path in objects.values():
        st = path.stat()
        assert (st.st_uid, st.st_nlink, st.st_mode & 0o777) == (os.geteuid(), 1, 0o444)


def test_json_and_text_name_the_mode(history: History) -> None:
    done = run_cli("scan", "--dry-run", "--json", "--store", str(history.store), str(history.root))
    assert done.json()["stores"][0]["link_mode"] == "reflink"
    text = run_cli("scan", "--dry-run", "--store", str(history.store), str(history.root))
    assert "shared by reflinks" in text.stdout


# --- on a filesystem of its own --------------------------------------------------------


@pytest.fixture
def pair_on_cow(cow_mount: Path, wheelhouse: Path) -> tuple[Venv, Venv]:
    a, b = create_venvs(wheelhouse, cow_mount / "venvs", a=["alpha==1.0"], b=["alpha==1.0"])
    return a, b


def test_an_edit_in_place_reaches_only_its_own_file(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path
) -> None:
    a, b = pair_on_cow
    scan([cow_mount / "venvs"], store=cow_mount / "store", jobs=1)
    original = a.file("alpha/util.py").read_bytes()
    assert shares_blocks(a.file("alpha/util.py"), b.file("alpha/util.py"))
    with open(b.file("alpha/util.py"), "r+b") as f:  # as `cp` onto it or an editor would
        f.write(b"# edited in place\n")
    assert a.file("alpha/util.py").read_bytes() == original
    assert b.file("alpha/util.py").read_bytes().startswith(b"# edited in place\n")
    stored = [p.read_bytes() for p in store_objects(cow_mount / "store").values()]
    assert original in stored


def test_a_source_edited_after_the_scan_is_recompiled_from_its_own_bytes(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path
) -> None:
    """The shared pyc is a checked hash-based one: an in-place edit that keeps the
    source's size and mtime still makes b's importer compile b's new bytes, while a keeps
    importing from the shared pyc."""
    a, b = pair_on_cow
    scan([cow_mount / "venvs"], store=cow_mount / "store", jobs=1)
    rel = "alpha/__pycache__/util.cpython-311.pyc"
    a_pyc, b_pyc = a.file(rel), b.file(rel)
    assert shares_blocks(a_pyc, b_pyc)
    source = b.file("alpha/util.py")
    st = source.stat()
    text = source.read_bytes()
    first, rest = text.split(b"\n", 1)  # the docstring's line, as long as the new one
    edited = b"EDITED = 1  # ".ljust(len(first), b"x") + b"\n" + rest
    with open(source, "r+b") as f:
        f.write(edited)
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    a_before = (a_pyc.stat().st_ino, a_pyc.read_bytes())
    importing = "import sys; sys.dont_write_bytecode = False; import alpha.util; "
    assert run_python(b, importing + "print(alpha.util.EDITED)").strip() == "1"
    assert not shares_blocks(a_pyc, b_pyc)  # b's importer wrote b a pyc of its own
    assert pyc_freshness(b.path)[str(b_pyc.relative_to(b.path))]
    run_python(a, importing + "assert not hasattr(alpha.util, 'EDITED')")
    assert (a_pyc.stat().st_ino, a_pyc.read_bytes()) == a_before


def test_a_pyc_object_cut_short_keeps_its_group_valid_and_private(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path, wheelhouse: Path
) -> None:
    """A pyc object that is no longer a pyc header (damaged on disk): a later venv's pyc
    of its group is kept as it is, valid, the pycs cloned from it before keep their
    bytes, and verify names the object."""
    root, store = cow_mount / "venvs", cow_mount / "store"
    scan([root], store=store, jobs=1)
    rel = "alpha/__pycache__/util.cpython-311.pyc"
    a, b = pair_on_cow
    (obj,) = [p for p in store_objects(store).values() if shares_blocks(p, a.file(rel))]
    kept = {v: v.file(rel).read_bytes() for v in (a, b)}
    obj.chmod(0o644)
    os.truncate(obj, 8)
    (c,) = create_venvs(wheelhouse, root, c=["alpha==1.0"])
    c_before = (c.file(rel).stat().st_ino, c.file(rel).read_bytes())
    scan([root], store=store, jobs=1)
    assert (c.file(rel).stat().st_ino, c.file(rel).read_bytes()) == c_before
    assert pyc_freshness(c.path)[str(c.file(rel).relative_to(c.path))]
    assert {v: v.file(rel).read_bytes() for v in (a, b)} == kept
    assert [d.path for d in verify([root], store=store).damaged] == [str(obj)]


def test_pycs_that_already_share_blocks_are_left_as_they_are(
    cow_mount: Path, wheelhouse: Path
) -> None:
    """b is a reflink copy of a (cp --reflink): every pyc already shares its blocks with
    a's. Replacing them by clones of a new object would free nothing and cost the objects:
    they are kept, and the dry and the real run say that nothing is reclaimed by pycs."""
    root, store = cow_mount / "venvs", cow_mount / "store"
    (a,) = create_venvs(wheelhouse, root, a=["alpha==1.0", "beta==1.0"])
    subprocess.run(["cp", "-a", "--reflink=always", str(a.path), str(root / "b")], check=True)
    b = Venv(root / "b")
    pycs = sorted(str(p.relative_to(a.path)) for p in a.path.rglob("__pycache__/*.pyc"))
    inodes = {rel: ((a.path / rel).stat().st_ino, (b.path / rel).stat().st_ino) for rel in pycs}
    dry = scan([root], store=store, dry_run=True, jobs=1)
    real = scan([root], store=store, jobs=1)
    assert dry.pyc == real.pyc
    assert (real.pyc.bytes_reclaimed, real.pyc.linked, real.pyc.stored) == (0, 0, 0)
    after = {rel: ((a.path / rel).stat().st_ino, (b.path / rel).stat().st_ino) for rel in pycs}
    assert after == inodes
    for rel in pycs:
        assert shares_blocks(a.path / rel, b.path / rel) or (b.path / rel).stat().st_size <= 2048


def test_hardlink_mode_on_a_cow_filesystem_shares_inodes(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path
) -> None:
    a, b = pair_on_cow
    result = scan([cow_mount / "venvs"], store=cow_mount / "store", link_mode="hardlink")
    assert result.stores[0].link_mode == "hardlink"
    assert a.file("alpha/util.py").stat().st_ino == b.file("alpha/util.py").stat().st_ino


def test_reflink_mode_refuses_a_filesystem_that_cannot(tmpfs_mount: Path, wheelhouse: Path) -> None:
    create_venvs(wheelhouse, tmpfs_mount / "venvs", a=["alpha==1.0"], b=["alpha==1.0"])
    before = snapshot(tmpfs_mount)
    result = scan([tmpfs_mount / "venvs"], store=tmpfs_mount / "store", link_mode="reflink")
    assert len(result.skipped_venvs) == 2
    assert all("cannot share data blocks" in s.reason for s in result.skipped_venvs)
    assert snapshot(tmpfs_mount) == before
    done = run_cli("scan", "--link-mode", "reflink", str(tmpfs_mount / "venvs"))
    assert "cannot share data blocks" in done.stdout + done.stderr


@pytest.mark.parametrize("stage", ["adopt", "checked"])
def test_a_file_written_during_the_scan_keeps_what_was_written(
    pair_on_cow: tuple[Venv, Venv],
    cow_mount: Path,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
) -> None:
    """Right before its data is cloned into the store (adopt) or shared with the
    store's copy (checked), a file is written in place, same size, other bytes: it keeps
    them, no store object holds them, and nothing else is harmed."""
    a, b = pair_on_cow
    victim = (a if stage == "adopt" else b).file("alpha/util.py")
    size = victim.stat().st_size
    written = b"#" * size

    def write_once(hook_stage: str, at: At) -> None:
        if hook_stage == stage and at.path == str(victim) and victim.read_bytes() != written:
            with open(victim, "r+b") as f:
                f.write(written)

    monkeypatch.setattr(steps, "fault_hook", write_once)
    result = scan([cow_mount / "venvs"], store=cow_mount / "store", jobs=1)
    assert victim.read_bytes() == written
    assert result.skipped.get("changed-during-scan") == 1, result.skipped
    for path in store_objects(cow_mount / "store").values():
        assert path.read_bytes() != written
    other = (b if stage == "adopt" else a).file("alpha/util.py")
    assert other.read_bytes() != written


def test_owner_is_kept_when_root_shares_a_users_files(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path
) -> None:
    a, b = pair_on_cow
    for path in [b.path, *b.path.rglob("*")]:
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)
    util = b.file("alpha/util.py")
    mode = util.stat().st_mode
    scan([cow_mount / "venvs"], store=cow_mount / "store", jobs=1)
    st = util.stat()
    assert (st.st_uid, st.st_gid, st.st_mode) == (OTHER_UID, OTHER_UID, mode)
    assert shares_blocks(a.file("alpha/util.py"), util)


def test_verify_finds_copies_intact_and_gc_keeps_what_venvs_share(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path
) -> None:
    a, b = pair_on_cow
    store = cow_mount / "store"
    scan([cow_mount / "venvs"], store=store, jobs=1)
    objects = store_objects(store)
    checked = verify([cow_mount / "venvs"], store=store)
    assert checked.damaged == () and checked.objects_checked == len(objects)
    (note,) = checked.notes
    assert note.startswith(f"{store}: its copy-on-write copies share data blocks")
    assert "no venv can change them" in note
    text = run_cli("verify", "--store", str(store), str(cow_mount / "venvs")).stdout
    assert "an edit reaches only the file edited" in text
    assert gc(store).files_removed == 0
    assert store_objects(store) == objects
    shutil.rmtree(a.path)
    shutil.rmtree(b.path)
    os.sync()  # XFS frees removed inodes' blocks in the background; sync waits for it
    # No venv shares their blocks now: each copy takes space of its own, and goes.
    assert gc(store).files_removed == len(objects)
    assert store_objects(store) == {}


def test_detach_has_nothing_to_do_and_says_why(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path
) -> None:
    a, _ = pair_on_cow
    store = cow_mount / "store"
    scan([cow_mount / "venvs"], store=store, jobs=1)
    before = snapshot(a.path)
    inodes_before = {p: p.stat().st_ino for p in a.path.rglob("*.py")}
    result = detach([a.path], store=store)
    assert (result.files_shared, result.files_detached, result.errors) == (0, 0, ())
    assert any("they need no detaching" in n for n in result.notes), result.notes
    assert snapshot(a.path) == before
    assert {p: p.stat().st_ino for p in a.path.rglob("*.py")} == inodes_before
    text = run_cli("detach", "--store", str(store), str(a.path)).stdout
    assert "they need no detaching" in text


def test_status_tells_shared_blocks_per_venv(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path
) -> None:
    store = cow_mount / "store"
    result = scan([cow_mount / "venvs"], store=store, jobs=1)
    found = status([cow_mount / "venvs"], store=store)
    for venv in found.venvs:
        assert venv.files_shared > 0 and venv.bytes_in_shared_blocks > 0, venv
    (store_status,) = found.stores
    # a's copies and b's share blocks with the store's copies, which hold them once: what
    # that saves is what the scan freed.
    assert store_status.unused_objects == 0
    saved, freed = store_status.bytes_saved, result.bytes_reclaimed
    assert abs(saved - freed) <= freed // 10, (saved, freed)
    text = run_cli("status", "--store", str(store), str(cow_mount / "venvs")).stdout
    assert "in shared blocks" in text


KILLS = [
    pytest.param({"mode": "hook", "stage": stage, "n": n}, id=f"{stage}-{n}")
    for stage, n in [("adopt", 3), ("adopted", 2), ("replace", 2), ("checked", 4)]
] + [
    pytest.param({"mode": "line", "files": ["link/reflinks.py"], "n": n}, id=f"line-{n}")
    for n in (40, 150, 300)
]


@pytest.mark.parametrize("kill", KILLS)
def test_a_kill_changes_no_bytes_and_the_next_run_completes(
    pair_on_cow: tuple[Venv, Venv], cow_mount: Path, kill: dict[str, object]
) -> None:
    root, store = cow_mount / "venvs", cow_mount / "store"
    before = pyc_code_only(snapshot(root))
    fresh = pyc_freshness(root)
    config = {"op": "scan", "root": str(root), "store": str(store), "link_mode": "reflink"}
    run = run_child({**config, "kill": kill})
    assert run.killed, run
    assert snapshot_diff(before, pyc_code_only(without_leftovers(snapshot(root)))) == []
    result = scan([root], store=store, jobs=1)
    assert result.errors == (), result.errors
    assert pyc_code_only(snapshot(root)) == before
    assert leftovers(root, store) == []
    assert pyc_freshness(root) == fresh
    a, b = pair_on_cow
    assert shares_blocks(a.file("alpha/util.py"), b.file("alpha/util.py"))
    assert verify([root], store=store).ok
