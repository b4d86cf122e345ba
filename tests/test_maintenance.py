"""Tests for dedupe.maintenance: status, verify, detach and gc on real scanned venvs, the
store's lock waiting, and the store's refusal of loose ownership or permissions."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
from helpers import (
    PIP_ENV,
    MakeVenvs,
    Venv,
    disk_usage,
    edit_in_place,
    file_sha256,
    hold_lock,
    inodes,
    pip,
    run_console_script,
    run_python,
    saving_of_objects,
    snapshot,
    snapshot_diff,
    store_objects,
    temp_leftovers,
    unused_objects,
)

from dedupe import StoreError, StoreLockedError, maintenance, scan
from dedupe.maintenance import (
    Distribution,
    InsufficientSpaceError,
    detach,
    distribution_of,
    gc,
    status,
    verify,
)
from dedupe.maintenance.owners import Owner, repair_command
from dedupe.store import open_store

UTIL = "alpha/util.py"  # the same bytes in alpha 1.0 and 2.0
ALPHA_SOURCES = ("alpha/__init__.py", "alpha/core.py", "alpha/util.py", "alpha/cli.py")


@pytest.fixture
def three(make_venvs: MakeVenvs, venv_root: Path, store_dir: Path) -> tuple[Venv, ...]:
    """a: alpha 1.0 + beta 1.0, b: alpha 1.0, c: alpha 2.0; scanned into store_dir."""
    venvs = make_venvs(venv_root, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0"], c=["alpha==2.0"])
    assert not scan([venv_root], store=store_dir).errors
    return venvs


# --- status --------------------------------------------------------------------------------


def test_status_after_scan_reports_what_the_objects_save(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b, c = three
    result = status([venv_root], store=store_dir)

    assert result.bytes_saved > 0
    assert result.bytes_saved == saving_of_objects(store_dir)
    (store,) = result.stores
    assert store.objects == len(store_objects(store_dir))
    assert store.unused_objects == 0
    # Every name of every object is under the root: the shares add up exactly.
    assert store.links_outside_roots == 0
    assert sum(v.bytes_saved for v in result.venvs) == result.bytes_saved
    assert sum(d.bytes_saved for d in result.distributions) == result.bytes_saved
    # Per venv: the files that are store objects, counted by inode.
    object_inodes = set(store_objects(store_dir))
    for venv, report in zip((a, b, c), result.venvs, strict=True):
        assert report.path == str(venv.path)
        linked = [p for p, (_, ino) in inodes(venv.path).items() if ino in object_inodes]
        assert report.files_shared == len(linked) > 0
    by_dist = {(d.name, d.version): d for d in result.distributions}
    assert by_dist["alpha", "1.0"].venvs == 2
    assert by_dist["alpha", "2.0"].venvs == 1


def test_status_counts_objects_no_venv_uses(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b, c = three
    for venv in (a, b, c):
        pip(venv, "uninstall", "-y", "-q", "alpha")
    result = status([venv_root], store=store_dir)
    unused = unused_objects(store_dir).values()
    assert result.unused_objects == len(unused) > 0
    assert result.unused_bytes == sum(os.lstat(p).st_blocks * 512 for p in unused)


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        pytest.param("alpha-1.0.dist-info", Distribution("alpha", "1.0"), id="plain"),
        pytest.param("Foo_Bar-2.0.dist-info", Distribution("foo-bar", "2.0"), id="name"),
        pytest.param("foo-01.00.dist-info", Distribution("foo", "1.0"), id="version"),
        pytest.param("foo-1.0RC1.dist-info", Distribution("foo", "1.0rc1"), id="pre"),
        pytest.param("foo-weird.dist-info", Distribution("foo", "weird"), id="invalid"),
    ],
)
def test_distribution_names_and_versions_are_normalised(
    folder: str, expected: Distribution
) -> None:
    assert distribution_of(folder) == expected


# --- verify --------------------------------------------------------------------------------


def test_verify_of_an_intact_store_finds_nothing(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    result = verify([venv_root], store=store_dir)
    assert result.ok
    assert result.objects_checked == len(store_objects(store_dir)) > 0


def test_verify_names_every_venv_an_in_place_edit_reached(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path, wheelhouse: Path
) -> None:
    a, b, c = three
    shared = os.lstat(a.file(UTIL))
    edit_in_place(a.file(UTIL))

    result = verify([venv_root], store=store_dir)

    assert not result.ok
    (damaged,) = result.damaged
    assert os.lstat(damaged.path).st_ino == shared.st_ino
    assert damaged.other_links == 3
    assert {f.path for f in damaged.linked_files} == {str(v.file(UTIL)) for v in (a, b, c)}
    dists = {f.venv: f.distribution for f in damaged.linked_files}
    assert dists == {
        str(a.path): Distribution("alpha", "1.0"),
        str(b.path): Distribution("alpha", "1.0"),
        str(c.path): Distribution("alpha", "2.0"),
    }
    assert {r.venv for r in result.repairs} == {str(v.path) for v in (a, b, c)}
    for repair in result.repairs:
        assert repair.command is not None
        assert "--force-reinstall" in repair.command
        assert f"alpha=={repair.distribution.version}" in repair.command  # type: ignore[union-attr]
        assert str(Path(repair.venv) / "bin" / "python") in repair.command
    # Nothing was moved without --repair.
    assert os.path.exists(damaged.path)

    # The commands work: each venv gets intact files of its own again.
    for repair in result.repairs:
        assert repair.command is not None
        argv = shlex.split(repair.command)
        assert argv[:3] == ["python3", "-m", "pip"]  # these venvs were made without pip
        argv[0] = sys.executable
        completed = __import__("subprocess").run(
            argv,
            capture_output=True,
            text=True,
            env={**os.environ, **PIP_ENV, "PIP_FIND_LINKS": str(wheelhouse)},
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
    intact = file_sha256(b.file(UTIL))
    for venv in (a, b, c):
        assert os.lstat(venv.file(UTIL)).st_ino != shared.st_ino
        assert file_sha256(venv.file(UTIL)) == intact
    assert run_python(a, "import alpha.util; print(alpha.util.double(4))").strip() == "8"


def test_verify_repair_moves_the_object_out_and_no_scan_links_to_it(
    three: tuple[Venv, ...],
    venv_root: Path,
    store_dir: Path,
    make_venvs: MakeVenvs,
) -> None:
    a, b, c = three
    damaged_ino = os.lstat(a.file(UTIL)).st_ino
    edit_in_place(a.file(UTIL))
    edited = a.file(UTIL).read_bytes()

    result = verify([venv_root], store=store_dir, repair=True)

    assert not result.ok  # the venvs still hold the damaged bytes
    (damaged,) = result.damaged
    assert damaged.moved_to is not None
    assert Path(damaged.moved_to).is_relative_to(store_dir / "damaged")
    assert os.lstat(damaged.moved_to).st_ino == damaged_ino
    assert not os.path.lexists(damaged.path)
    assert damaged_ino not in store_objects(store_dir)
    for venv in (a, b, c):  # the venv files keep their (damaged) bytes and inode
        assert os.lstat(venv.file(UTIL)).st_ino == damaged_ino
        assert venv.file(UTIL).read_bytes() == edited

    # A new venv with intact bytes: the next scan must not link it to the damaged inode.
    (d,) = make_venvs(venv_root, d=["alpha==1.0"])
    intact = d.file(UTIL).read_bytes()
    scan([venv_root], store=store_dir)
    assert os.lstat(d.file(UTIL)).st_ino != damaged_ino
    assert d.file(UTIL).read_bytes() == intact
    assert os.lstat(damaged.moved_to).st_nlink == 4  # a, b, c and damaged/: nothing new
    assert verify([venv_root], store=store_dir).damaged == ()


# --- detach --------------------------------------------------------------------------------


def test_detach_gives_private_copies_with_the_same_bytes_and_mode(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b, c = three
    object_inodes = set(store_objects(store_dir))
    before = snapshot(a.path)
    shared = {
        p: os.lstat(a.path / p) for p, (_, ino) in inodes(a.path).items() if ino in object_inodes
    }
    assert shared
    b_before = {p: os.lstat(b.path / p).st_nlink for p in shared if (b.path / p).exists()}

    result = detach([a.path], store=store_dir)

    assert not result.errors and not result.skipped_venvs
    assert result.files_detached == result.files_shared == len(shared)
    assert result.bytes_needed == sum(st.st_blocks * 512 for st in shared.values())
    assert snapshot_diff(before, snapshot(a.path)) == []  # bytes, modes, owners
    for relpath, old in shared.items():
        now = os.lstat(a.path / relpath)
        assert now.st_ino != old.st_ino, relpath
        assert now.st_nlink == 1, relpath
        assert now.st_ino not in object_inodes
        assert stat.S_IMODE(now.st_mode) == stat.S_IMODE(old.st_mode)
        assert now.st_mtime_ns == old.st_mtime_ns  # pycs of it stay valid
    names_in_a = Counter(st.st_ino for st in shared.values())  # WHEEL: twice, same bytes
    for relpath, nlink in b_before.items():  # b lost a's names of the shared inodes only
        assert os.lstat(b.path / relpath).st_nlink == nlink - names_in_a[shared[relpath].st_ino]
    assert temp_leftovers(venv_root) == []
    assert run_console_script(a, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]
    assert run_python(a, "import beta.engine; print(beta.engine.run())").strip() == "43"
    assert status([venv_root], store=store_dir).venvs[0].files_shared == 0


def test_detach_dry_run_changes_nothing_and_says_the_space(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, _, _ = three
    before = inodes(venv_root)
    result = detach([a.path], store=store_dir, dry_run=True)
    assert inodes(venv_root) == before
    assert result.files_detached == 0
    assert result.files_shared > 0
    (space,) = result.space
    assert space.bytes_needed == result.bytes_needed > 0
    assert space.fits


def test_detach_refuses_when_the_filesystem_lacks_room(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = three
    real = os.statvfs(a.path)
    needed = detach([a.path], store=store_dir, dry_run=True).bytes_needed

    class Tight:
        f_frsize = real.f_frsize
        f_bavail = (needed + maintenance.SPACE_MARGIN) // real.f_frsize - 1
        f_files, f_favail = real.f_files, real.f_favail

    monkeypatch.setattr(maintenance.os, "statvfs", lambda path: Tight)
    before = inodes(venv_root)
    with pytest.raises(InsufficientSpaceError, match="not enough room"):
        detach([a.path], store=store_dir)
    assert inodes(venv_root) == before
    assert not detach([a.path], store=store_dir, dry_run=True).space[0].fits


def test_detach_rejects_a_folder_that_is_not_a_venv(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    with pytest.raises(maintenance.UsageError, match="not a virtualenv"):
        detach([venv_root], store=store_dir)


# --- gc ------------------------------------------------------------------------------------


def test_gc_removes_objects_no_venv_uses_and_reports_the_bytes(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b, c = three
    for venv in (a, b, c):
        pip(venv, "uninstall", "-y", "-q", "alpha")
    beta_before = snapshot(a.site_packages)
    unused = unused_objects(store_dir)
    assert unused
    objects_before = store_objects(store_dir)
    usage_before = disk_usage(store_dir)

    dry = gc(store_dir, dry_run=True)
    assert store_objects(store_dir) == objects_before
    assert disk_usage(store_dir) == usage_before

    real = gc(store_dir)
    usage_after = disk_usage(store_dir)
    assert real.files_removed == dry.files_removed == len(unused)
    assert real.bytes_freed == dry.bytes_freed == usage_before.allocated - usage_after.allocated
    assert real.bytes_freed > 0
    assert real.apparent_bytes_freed == usage_before.apparent - usage_after.apparent
    assert set(store_objects(store_dir)) == set(objects_before) - set(unused)
    assert real.folders_removed == dry.folders_removed
    for tree in ("objects", "pyc"):  # no empty shard folder is left
        for folder, dirs, files in os.walk(store_dir / tree):
            if Path(folder) != store_dir / tree:
                assert dirs or files, folder
    # What venvs still use stays: beta's files in a, WHEEL among them, are untouched.
    assert snapshot_diff(beta_before, snapshot(a.site_packages)) == []
    assert gc(store_dir).files_removed == 0


def test_gc_without_a_store_uses_the_user_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with pytest.raises(StoreError, match="no venv-dedupe store"):
        gc()
    store = open_store(str(tmp_path / "data" / "venv-dedupe" / "store"), create=True)
    assert store is not None
    result = gc()
    assert result.store == store.path
    assert any("user store" in note for note in result.notes)


# --- the lock ------------------------------------------------------------------------------


def test_a_held_lock_fails_at_once_without_waiting(
    three: tuple[Venv, ...], held_lock: int, store_dir: Path
) -> None:
    told: list[str] = []
    start = time.monotonic()
    with pytest.raises(StoreLockedError, match=f"pid {held_lock}") as info:
        gc(store_dir, lock_timeout=0, on_lock_wait=told.append)
    assert time.monotonic() - start < 0.5
    assert str(store_dir / "lock") in str(info.value)
    assert told == []


def test_a_held_lock_is_waited_for_then_reported(
    three: tuple[Venv, ...], held_lock: int, store_dir: Path
) -> None:
    told: list[str] = []
    start = time.monotonic()
    with pytest.raises(StoreLockedError, match=f"pid {held_lock}"):
        gc(store_dir, lock_timeout=0.6, on_lock_wait=told.append)
    assert time.monotonic() - start >= 0.6
    assert len(told) == 1 and f"pid {held_lock}" in told[0]


def test_the_lock_is_taken_once_it_is_released(three: tuple[Venv, ...], store_dir: Path) -> None:
    import threading

    held = ExitStack()
    held.enter_context(hold_lock(store_dir))
    (store_dir / "lock").write_text("")  # emptied: only gc can write a pid into it now
    threading.Timer(0.5, held.close).start()
    told: list[str] = []
    assert gc(store_dir, lock_timeout=10, on_lock_wait=told.append).errors == ()
    assert len(told) == 1
    assert (store_dir / "lock").read_text().strip() == str(os.getpid())


# --- store safety --------------------------------------------------------------------------


def test_a_store_writable_by_others_is_refused(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    before = inodes(venv_root)
    store_dir.chmod(0o777)
    for run in (
        lambda: status([venv_root], store=store_dir),
        lambda: gc(store_dir),
        lambda: scan([venv_root], store=store_dir),
    ):
        with pytest.raises(StoreError, match="chmod go-w"):
            run()
    store_dir.chmod(0o775)
    with pytest.raises(StoreError, match="writable by its group"):
        status([venv_root], store=store_dir)
    assert inodes(venv_root) == before
    store_dir.chmod(0o755)
    assert status([venv_root], store=store_dir).bytes_saved > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_store_owned_by_another_user_is_refused(
    three: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    os.chown(store_dir, 4242, -1)
    with pytest.raises(StoreError, match="owned by uid 4242") as info:
        verify([venv_root], store=store_dir)
    assert "chown" in str(info.value)
    os.chown(store_dir, 0, -1)
    os.chown(store_dir / "objects", 4242, -1)
    with pytest.raises(StoreError, match="owned by uid 4242"):
        gc(store_dir)


def test_a_store_made_under_a_loose_umask_is_accepted(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path
) -> None:
    make_venvs(venv_root, a=["alpha==1.0"], b=["alpha==1.0"])
    old = os.umask(0o002)
    try:
        scan([venv_root], store=store_dir)
    finally:
        os.umask(old)
    # Private: a file readable only through a 0o700 venv folder must not become
    # readable through the store. Nothing the store holds is group- or other-writable.
    assert stat.S_IMODE(os.stat(store_dir).st_mode) == 0o700
    for folder in [store_dir, *(p for p in store_dir.rglob("*") if p.is_dir())]:
        assert not stat.S_IMODE(folder.stat().st_mode) & 0o022, folder
    assert status([venv_root], store=store_dir).bytes_saved > 0


def test_a_detach_of_many_venvs_holds_the_folder_handles_of_one_at_a_time(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path
) -> None:
    """With a descriptor limit that one venv's folder handles fit under and four venvs'
    do not, detach still gives every venv its private copies: each venv's handles are
    closed once its files are done (and once its plan is made)."""
    venvs = make_venvs(venv_root, **{n: ["alpha==1.0", "beta==1.0"] for n in "abcd"})
    scan([venv_root], store=store_dir)
    folders = sum(1 for p in venvs[0].path.rglob("*") if p.is_dir() and not p.is_symlink())
    code = (
        "import os, resource, sys\n"
        "from dedupe import detach\n"
        "in_use = len(os.listdir('/proc/self/fd'))\n"
        f"limit = in_use + {folders} + 8\n"  # one venv's handles, a few files, the lock
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))\n"
        "r = detach(sys.argv[1:-1], store=sys.argv[-1])\n"
        "print(len(r.errors), r.files_detached, r.files_shared)\n"
    )
    paths = [str(v.path) for v in venvs]
    out = subprocess.run(
        [sys.executable, "-c", code, *paths, str(store_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    errors, detached, shared = map(int, out)
    assert errors == 0 and detached == shared > 0
    assert all(os.lstat(v.file("alpha/util.py")).st_nlink == 1 for v in venvs)


@pytest.mark.parametrize(
    ("installer", "mode", "command", "noted"),
    [
        pytest.param(
            "uv", "copy", "uv pip install --python {py} --reinstall --no-deps "
            "--link-mode copy alpha==1.0", False, id="uv-copy"
        ),
        pytest.param(
            "uv", None, "uv pip install --python {py} --reinstall --no-deps alpha==1.0", True,
            id="uv-mode-unknown",
        ),
        pytest.param(
            "pip", None, "{py} -m pip install --force-reinstall --no-deps alpha==1.0", False,
            id="pip",
        ),
    ],
)  # fmt: skip
def test_repair_command_names_the_link_mode_or_says_it_shares_uvs_cache(
    installer: str, mode: str | None, command: str, noted: bool
) -> None:
    owner = Owner(Distribution("alpha", "1.0"), installer)
    got, note = repair_command("/v", owner, has_pip=True, uv_link_mode=mode)
    assert got == command.format(py="/v/bin/python")
    assert (note is not None) == noted
    if noted:
        assert note is not None and "shares the venv's files with uv's cache" in note
        assert "--link-mode copy" in note
