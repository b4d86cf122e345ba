"""Tests for the command line (`python -m dedupe`): JSON contract, quiet mode, exit codes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import (
    MakeVenvs,
    Venv,
    create_venvs,
    hold_lock,
    inode,
    inodes,
    run_cli,
    snapshot,
    snapshot_diff,
    store_objects,
)

from dedupe import scan

# The keys of the --json object (CONTRACT.md).
TOP_LEVEL_KEYS = {
    "dry_run",
    "venvs",
    "skipped_venvs",
    "files_scanned",
    "files_eligible",
    "files_linked",
    "files_already_shared",
    "files_stored",
    "files_linked_without_gain",
    "bytes_reclaimed",
    "apparent_bytes_reclaimed",
    "skipped",
    "errors",
    "warnings",
    "stores",
    "store",
}
VENV_KEYS = {
    "path",
    "files_scanned",
    "files_eligible",
    "files_linked",
    "files_already_shared",
    "bytes_reclaimed",
    "apparent_bytes_reclaimed",
    "skipped",
}
STORE_KEYS = {"path", "objects", "exists", "scan_state_bytes"}


@pytest.fixture(scope="module")
def unchanged_root(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """A root with venvs A and B for the tests that must not change anything.

    Shared to save pip runs; each test that uses it asserts it changed nothing.
    """
    root = tmp_path_factory.mktemp("cli-unchanged") / "venvs"
    create_venvs(wheelhouse, root, a=["alpha==1.0"], b=["alpha==1.0"])
    return root


def test_json_dry_run_prints_one_object_with_the_contract_keys(
    unchanged_root: Path, store_dir: Path
) -> None:
    venv_root = unchanged_root
    before, inodes_before = snapshot(venv_root), inodes(venv_root)

    run = run_cli("scan", str(venv_root), "--store", str(store_dir), "--json", "--dry-run")

    assert run.returncode == 0, run
    report = run.json()  # the whole of stdout is one JSON object
    assert report.keys() >= TOP_LEVEL_KEYS
    assert report["dry_run"] is True
    assert len(report["venvs"]) == 2
    for venv_report in report["venvs"]:
        assert venv_report.keys() >= VENV_KEYS
    assert report["skipped_venvs"] == []
    assert report["errors"] == []
    assert all(store.keys() >= STORE_KEYS for store in report["stores"])
    assert report["store"] is None or report["store"].keys() >= STORE_KEYS
    assert report["files_linked"] > 0
    assert report["bytes_reclaimed"] > 0
    # A dry run changes nothing.
    assert snapshot_diff(before, snapshot(venv_root)) == []
    assert inodes(venv_root) == inodes_before
    assert store_objects(store_dir) == {}

    # The CLI reports what the library computes.
    library = scan([venv_root], store=store_dir, dry_run=True)
    for name in ("files_linked", "files_stored", "bytes_reclaimed", "apparent_bytes_reclaimed"):
        assert report[name] == getattr(library, name), name
    assert report["skipped"] == library.skipped


def test_json_real_run_releases_the_lock_and_a_rerun_links_nothing(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b = pair
    first = run_cli("scan", str(venv_root), "--store", str(store_dir), "--json")
    assert first.returncode == 0, first
    report = first.json()
    assert report["dry_run"] is False
    assert report["files_linked"] > 0
    assert os.path.realpath(report["store"]["path"]) == os.path.realpath(store_dir)
    assert report["store"]["objects"] == len(store_objects(store_dir))
    assert inode(a.file("alpha/core.py")) == inode(b.file("alpha/core.py"))

    # The run released its lock: taking it now does not wait (hold_lock would raise).
    with hold_lock(store_dir):
        pass

    second = run_cli("scan", str(venv_root), "--store", str(store_dir), "--json")
    assert second.returncode == 0, second
    assert second.json()["files_linked"] == 0
    assert second.json()["files_already_shared"] == (
        report["files_linked"] + report["files_stored"]
    )


def test_quiet_prints_nothing_on_success(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b = pair
    run = run_cli("scan", str(venv_root), "--store", str(store_dir), "--quiet")
    assert (run.returncode, run.stdout, run.stderr) == (0, "", ""), run
    assert inode(a.file("alpha/core.py")) == inode(b.file("alpha/core.py"))


def test_default_output_is_text(unchanged_root: Path, store_dir: Path) -> None:
    before = snapshot(unchanged_root)
    run = run_cli("scan", str(unchanged_root), "--store", str(store_dir), "--dry-run")
    assert run.returncode == 0, run
    assert run.stdout.strip() != ""
    assert not run.stdout.lstrip().startswith("{")
    assert snapshot_diff(before, snapshot(unchanged_root)) == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["scan", "--no-such-option"], id="unknown-option"),
        pytest.param(["no-such-command"], id="unknown-command"),
        pytest.param([], id="no-command"),
        pytest.param(["scan", "--jobs", "0", "{root}"], id="zero-jobs"),
    ],
)
def test_bad_usage_exits_2(args: list[str], venv_root: Path) -> None:
    run = run_cli(*(a.format(root=venv_root) for a in args))
    assert run.returncode == 2, run
    assert run.stderr.strip() != ""


def test_store_that_is_a_regular_file_exits_2_and_changes_nothing(
    unchanged_root: Path, tmp_path: Path
) -> None:
    venv_root = unchanged_root
    not_a_folder = tmp_path / "store-file"
    not_a_folder.write_text("this is not a store\n")
    before, inodes_before = snapshot(venv_root), inodes(venv_root)

    run = run_cli("scan", str(venv_root), "--store", str(not_a_folder))

    assert run.returncode == 2, run
    assert "store" in run.stderr.lower()
    assert snapshot_diff(before, snapshot(venv_root)) == []
    assert inodes(venv_root) == inodes_before
    assert not_a_folder.read_text() == "this is not a store\n"


def test_locked_store_exits_2_and_changes_nothing(
    make_venvs: MakeVenvs, tmp_path: Path, store_dir: Path, request: pytest.FixtureRequest
) -> None:
    first_root, later_root = tmp_path / "first", tmp_path / "later"
    a, b = make_venvs(first_root, a=["alpha==1.0"], b=["alpha==1.0"])
    (c,) = make_venvs(later_root, c=["alpha==1.0"])
    scan([first_root], store=store_dir)  # creates the store and its lock file
    before = {root: (snapshot(root), inodes(root)) for root in (first_root, later_root)}
    objects_before = store_objects(store_dir)

    request.getfixturevalue("held_lock")
    # --no-wait: exit at once (by default a run waits up to --lock-timeout for the lock).
    run = run_cli(
        "scan",
        str(first_root),
        str(later_root),
        "--store",
        str(store_dir),
        "--no-wait",
        timeout=60,
    )

    assert run.returncode == 2, run
    assert "lock" in run.stderr.lower()

    # The default waits for the lock, saying so, and exits 2 when the wait runs out.
    waited = run_cli(
        "scan",
        str(first_root),
        str(later_root),
        "--store",
        str(store_dir),
        "--lock-timeout",
        "0.5",
        timeout=60,
    )
    assert waited.returncode == 2, waited
    assert "lock" in waited.stderr.lower()

    for root, (states, numbers) in before.items():
        assert snapshot_diff(states, snapshot(root)) == []
        assert inodes(root) == numbers
    assert store_objects(store_dir) == objects_before
    assert os.lstat(c.file("alpha/core.py")).st_nlink == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_link_failure_is_an_error_and_exits_1(
    make_venvs: MakeVenvs, tmp_path: Path, store_dir: Path
) -> None:
    """A venv that cannot be written (here: a read-only bind mount) gives link-failed.

    The store is filled from other venvs first, so the read-only venv's files only ever
    need to be replaced, which the read-only mount refuses with EROFS.
    """
    writable_root, readonly_root = tmp_path / "rw", tmp_path / "ro"
    a, b = make_venvs(writable_root, a=["alpha==1.0"], b=["alpha==1.0"])
    (c,) = make_venvs(readonly_root, c=["alpha==1.0"])
    scan([writable_root], store=store_dir)

    bind = subprocess.run(
        ["mount", "--bind", str(readonly_root), str(readonly_root)],
        capture_output=True,
        check=False,
    )
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()!r}")
    try:
        remount = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(readonly_root)],
            capture_output=True,
            check=False,
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()!r}")
        before, inodes_before = snapshot(readonly_root), inodes(readonly_root)

        run = run_cli(
            "scan", str(writable_root), str(readonly_root), "--store", str(store_dir), "--json"
        )

        assert run.returncode == 1, run
        report = run.json()
        assert report["skipped"].get("link-failed", 0) >= 1, report["skipped"]
        assert report["errors"], report
        assert all({"path", "error"} <= error.keys() for error in report["errors"])
        assert snapshot_diff(before, snapshot(readonly_root)) == []
        assert inodes(readonly_root) == inodes_before
    finally:
        subprocess.run(["umount", "-l", str(readonly_root)], check=False)
