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
from dedupe.text import human_size

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
    "replaced_names_elsewhere",
    "object_names_elsewhere",
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
    "files_linked_without_gain",
    "files_stored",
    "files_already_shared",
    "bytes_reclaimed",
    "apparent_bytes_reclaimed",
    "skipped",
}
STORE_KEYS = {"path", "objects", "exists", "scan_state_bytes"}
# A and B have the same alpha 1.0: each of its 8 non-empty files (5 in the package, and
# METADATA, WHEEL, entry_points.txt) and each of its 4 modules' pycs is in two venvs, so
# one copy of each becomes a store object and the other is linked to it.
ALPHA_FILES, ALPHA_PYCS = 8, 4


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
    # One store: "store" is it, named as "stores" names it.
    (store,) = report["stores"]
    assert store.keys() >= STORE_KEYS
    assert report["store"] == store
    assert os.path.realpath(store["path"]) == os.path.realpath(store_dir)
    assert (report["files_linked"], report["files_stored"]) == (ALPHA_FILES, ALPHA_FILES)
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
    assert (report["files_linked"], report["files_stored"]) == (ALPHA_FILES, ALPHA_FILES)
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
    """The text report names the root, the figures of the run and the store, in words."""
    before = snapshot(unchanged_root)
    run = run_cli("scan", str(unchanged_root), "--store", str(store_dir), "--dry-run")
    assert run.returncode == 0, run
    assert snapshot_diff(before, snapshot(unchanged_root)) == []
    library = scan([unchanged_root], store=store_dir, dry_run=True)

    lines = run.stdout.splitlines()
    assert lines[0] == (
        f"venv-dedupe scan (dry run: nothing was changed): 2 venv(s) under {unchanged_root}"
    )
    # Each venv: its 8 alpha files, its RECORD, INSTALLER, REQUESTED and alpha-cli script
    # (per-install) and its empty py.typed; B's alpha files would be linked to A's.
    expected = [
        f"files: 26 scanned, 16 eligible, {ALPHA_FILES} would be linked, 0 already shared, "
        f"{ALPHA_FILES} would be stored as new objects, 0 with no copy to share",
        "skipped:",
        "          8  written per install (RECORD, scripts, .pth, ...) [per-install]",
        "          2  empty files [zero-bytes]",
        f"pycs: 8 beside RECORD sources, {ALPHA_PYCS} would be linked, 0 already shared, "
        f"{ALPHA_PYCS} would be stored as new objects",
        f"would reclaim: {human_size(library.bytes_reclaimed)} on disk "
        f"({human_size(library.apparent_bytes_reclaimed)} apparent size), of which pycs "
        f"{human_size(library.pyc.bytes_reclaimed)}",
        f"store {store_dir}: would be created, shared by hardlinks",
    ]
    assert [line for line in expected if line not in lines] == [], run.stdout
    # The table: venv (named from the venvs' common folder, said once), files, stored,
    # linked, linked without gain, shared: a's copies would become the objects.
    assert f"venvs in {unchanged_root}{os.sep}:" in lines, run.stdout
    rows = [line.split() for line in lines if line.startswith(("  a ", "  b "))]
    assert {row[0]: row[1:6] for row in rows} == {
        "a": ["13", str(ALPHA_FILES), "0", "0", "0"],
        "b": ["13", "0", str(ALPHA_FILES), "0", "0"],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["scan", "--no-such-option"],
            "unrecognized arguments: --no-such-option",
            id="unknown-option",
        ),
        pytest.param(
            ["no-such-command"],
            "argument COMMAND: invalid choice: 'no-such-command'",
            id="unknown-command",
        ),
        pytest.param([], "the following arguments are required: COMMAND", id="no-command"),
        pytest.param(
            ["scan", "--jobs", "0", "{root}"], "jobs must be at least 1, not 0", id="zero-jobs"
        ),
    ],
)
def test_bad_usage_exits_2(args: list[str], message: str, venv_root: Path) -> None:
    run = run_cli(*(a.format(root=venv_root) for a in args))
    assert run.returncode == 2, run
    assert run.stdout == ""
    assert run.stderr.splitlines()[-1].startswith(f"venv-dedupe: error: {message}"), run


def test_store_that_is_a_regular_file_exits_2_and_changes_nothing(
    unchanged_root: Path, tmp_path: Path
) -> None:
    venv_root = unchanged_root
    not_a_folder = tmp_path / "store-file"
    not_a_folder.write_text("this is not a store\n")
    before, inodes_before = snapshot(venv_root), inodes(venv_root)

    run = run_cli("scan", str(venv_root), "--store", str(not_a_folder))

    assert run.returncode == 2, run
    assert run.stderr == f"venv-dedupe: error: store {str(not_a_folder)!r} is not a folder\n"
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

    holder = request.getfixturevalue("held_lock")
    locked = (
        f"store {str(store_dir)!r} is locked by another venv-dedupe run (pid {holder}, "
        f"lock file {str(store_dir / 'lock')!r})"
    )
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
    assert run.stderr == f"venv-dedupe: error: {locked}; try again when it has finished\n"

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
    assert waited.stderr.splitlines() == [
        f"venv-dedupe: waiting up to 0.5 s for the lock of store {str(store_dir)!r}, held by "
        f"pid {holder} (lock file {str(store_dir / 'lock')!r})",
        f"venv-dedupe: error: {locked}; waited 0.5 s; try again when it has finished",
    ]

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
        # Each of c's 8 alpha files has its object in the store. Its 4 modules are refused
        # first: their __pycache__ is read-only too, linking would leave their pycs stale.
        # Linking each of the other 4 fails.
        skipped = report["skipped"]
        assert (skipped.get("pycache-read-only"), skipped.get("link-failed")) == (
            ALPHA_PYCS,
            ALPHA_FILES - ALPHA_PYCS,
        ), skipped
        failed = {error["path"] for error in report["errors"]}
        assert len(failed) == ALPHA_FILES - ALPHA_PYCS, report["errors"]
        assert all(path.startswith(str(readonly_root)) for path in failed), report["errors"]
        assert snapshot_diff(before, snapshot(readonly_root)) == []
        assert inodes(readonly_root) == inodes_before
    finally:
        subprocess.run(["umount", "-l", str(readonly_root)], check=False)
