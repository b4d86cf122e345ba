"""--metrics-file on scan, verify and gc, end to end on real venvs: the file read back by a
strict reader (tests/promtext.py) against the JSON report and the disk; a failed run keeps
the last success; a file that cannot be written harms nothing and is said."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    Venv,
    edit_in_place,
    inode,
    run_cli,
    saving_of_objects,
    store_objects,
    unused_objects,
)
from promtext import Family, read_prom, value

UTIL = "alpha/util.py"


def metrics(path: Path) -> dict[str, Family]:
    assert path.stat().st_mode & 0o7777 == 0o644
    assert sorted(os.listdir(path.parent)) == sorted(
        p.name for p in path.parent.iterdir() if not p.name.startswith(".")
    ), "a temp file was left beside it"
    return read_prom(path.read_text(encoding="utf-8"))


@pytest.fixture
def prom_dir(tmp_path: Path) -> Path:
    """node_exporter's textfile folder."""
    folder = tmp_path / "textfile"
    folder.mkdir()
    return folder


def test_scan_writes_its_figures_as_the_report_and_the_store_have_them(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, prom_dir: Path
) -> None:
    a, b = pair
    path = prom_dir / "venv-dedupe-scan.prom"
    before = time.time()
    run = run_cli(
        "scan", "--json", "--store", str(store_dir), "--metrics-file", str(path), str(venv_root)
    )
    after = time.time()
    assert run.returncode == 0, run
    assert inode(a.file(UTIL)) == inode(b.file(UTIL))  # the scan itself happened
    report = run.json()
    m = metrics(path)
    scan = {"command": "scan", "dry_run": "0"}
    assert value(m, "venv_dedupe_last_run_success", **scan) == 1
    assert before <= value(m, "venv_dedupe_last_success_timestamp_seconds", **scan) <= after
    assert 0 < value(m, "venv_dedupe_last_run_duration_seconds", **scan) <= after - before
    assert value(m, "venv_dedupe_reclaimed_bytes", **scan) == report["bytes_reclaimed"] > 0
    assert value(m, "venv_dedupe_linked_files", **scan) == report["files_linked"] > 0
    assert value(m, "venv_dedupe_linked_pycs", **scan) == report["pyc"]["linked"] > 0
    assert value(m, "venv_dedupe_scanned_files", **scan) == report["files_scanned"]
    assert value(m, "venv_dedupe_venvs", **scan) == 2
    assert value(m, "venv_dedupe_errors", **scan) == 0
    skipped = {dict(k)["reason"]: n for k, n in m["venv_dedupe_skipped_files"].samples.items()}
    assert {r: n for r, n in skipped.items() if n} == report["skipped"] != {}
    store = {**scan, "store": str(store_dir)}
    assert value(m, "venv_dedupe_store_objects", **store) == len(store_objects(store_dir)) > 0
    assert value(m, "venv_dedupe_store_unused_objects", **store) == len(unused_objects(store_dir))
    assert value(m, "venv_dedupe_store_saved_bytes", **store) == saving_of_objects(store_dir)
    assert saving_of_objects(store_dir) == report["bytes_reclaimed"]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["verify"], id="verify"),
        pytest.param(["gc", "--dry-run"], id="gc-dry-run"),
        pytest.param(["scan", "--dry-run"], id="scan-dry-run"),
    ],
)
def test_json_is_the_same_with_a_metrics_file(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, prom_dir: Path, argv: list[str]
) -> None:
    assert run_cli("scan", "-q", "--store", str(store_dir), str(venv_root)).returncode == 0
    for venv in pair:
        venv.file(UTIL).unlink()  # its object is unused: gc would remove it
    roots = [] if argv[0] == "gc" else [str(venv_root)]
    plain = run_cli(*argv, "--json", "--store", str(store_dir), *roots)
    path = prom_dir / f"{argv[0]}.prom"
    with_file = run_cli(
        *argv, "--json", "--store", str(store_dir), "--metrics-file", str(path), *roots
    )
    assert (with_file.returncode, with_file.stdout) == (plain.returncode, plain.stdout)
    assert with_file.stderr == plain.stderr == ""
    dry_run = "1" if "--dry-run" in argv else "0"
    assert (
        value(metrics(path), "venv_dedupe_last_run_success", command=argv[0], dry_run=dry_run) == 1
    )


def test_a_failed_verify_keeps_the_last_success(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, prom_dir: Path
) -> None:
    a, _ = pair
    assert run_cli("scan", "-q", "--store", str(store_dir), str(venv_root)).returncode == 0
    path = prom_dir / "verify.prom"
    ok = run_cli("verify", "--store", str(store_dir), "--metrics-file", str(path), str(venv_root))
    assert ok.returncode == 0, ok
    first = metrics(path)
    success = value(first, "venv_dedupe_last_success_timestamp_seconds")
    assert value(first, "venv_dedupe_damaged_objects") == 0
    checked = value(first, "venv_dedupe_checked_objects")
    assert checked == len(store_objects(store_dir))

    edit_in_place(a.file(UTIL))
    bad = run_cli("verify", "--store", str(store_dir), "--metrics-file", str(path), str(venv_root))
    assert bad.returncode == 1, bad
    m = metrics(path)
    assert value(m, "venv_dedupe_last_run_success", command="verify") == 0
    assert value(m, "venv_dedupe_last_success_timestamp_seconds", command="verify") == success
    assert value(m, "venv_dedupe_damaged_objects", command="verify") == 1
    assert value(m, "venv_dedupe_checked_objects", command="verify") == checked


def test_a_scan_that_cannot_start_still_says_it_failed(
    pair: tuple[Venv, ...],
    venv_root: Path,
    store_dir: Path,
    prom_dir: Path,
    request: pytest.FixtureRequest,
) -> None:
    path = prom_dir / "scan.prom"
    first = run_cli(
        "scan", "-q", "--store", str(store_dir), "--metrics-file", str(path), str(venv_root)
    )
    assert first.returncode == 0, first
    success = value(metrics(path), "venv_dedupe_last_success_timestamp_seconds")
    request.getfixturevalue("held_lock")

    locked = run_cli(
        "scan",
        "-q",
        "--no-wait",
        "--store",
        str(store_dir),
        "--metrics-file",
        str(path),
        str(venv_root),
    )

    assert locked.returncode == 2, locked
    assert "error" in locked.stderr and "metrics" not in locked.stderr
    m = metrics(path)
    assert sorted(m) == [
        "venv_dedupe_last_run_duration_seconds",
        "venv_dedupe_last_run_success",
        "venv_dedupe_last_success_timestamp_seconds",
    ]
    assert value(m, "venv_dedupe_last_run_success", command="scan") == 0
    assert value(m, "venv_dedupe_last_success_timestamp_seconds", command="scan") == success


def test_gc_dry_run_is_labelled_and_its_figures_are_what_gc_then_does(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, prom_dir: Path
) -> None:
    a, b = pair
    assert run_cli("scan", "-q", "--store", str(store_dir), str(venv_root)).returncode == 0
    for venv in (a, b):
        venv.file(UTIL).unlink()
    unused = len(unused_objects(store_dir))
    assert unused == 1

    dry_path, real_path = prom_dir / "gc-dry-run.prom", prom_dir / "gc.prom"
    dry = run_cli("gc", "--dry-run", "--store", str(store_dir), "--metrics-file", str(dry_path))
    real = run_cli("gc", "--json", "--store", str(store_dir), "--metrics-file", str(real_path))
    assert (dry.returncode, real.returncode) == (0, 0), (dry, real)

    would, did = metrics(dry_path), metrics(real_path)
    dry_labels, real_labels = {"command": "gc", "dry_run": "1"}, {"command": "gc", "dry_run": "0"}
    assert value(would, "venv_dedupe_removed_objects", **dry_labels) == unused
    assert value(did, "venv_dedupe_removed_objects", **real_labels) == unused
    freed = real.json()["bytes_freed"]
    assert value(would, "venv_dedupe_freed_bytes", **dry_labels) == freed > 0
    assert value(did, "venv_dedupe_freed_bytes", **real_labels) == freed
    store = {"store": str(store_dir)}
    assert value(would, "venv_dedupe_store_unused_objects", **store) == unused
    assert value(did, "venv_dedupe_store_unused_objects", **store) == 0
    assert value(did, "venv_dedupe_store_objects", **store) == len(store_objects(store_dir))


def test_a_missing_folder_is_said_after_the_scan_and_exits_1(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    a, b = pair
    path = tmp_path / "no-such-folder" / "scan.prom"
    run = run_cli(
        "scan", "--json", "--store", str(store_dir), "--metrics-file", str(path), str(venv_root)
    )
    assert run.returncode == 1, run
    assert run.json()["files_linked"] > 0  # the report is printed as ever
    assert inode(a.file(UTIL)) == inode(b.file(UTIL))
    assert run.stderr == (
        f"venv-dedupe: error: metrics not written: the folder {str(path.parent)!r} of "
        f"{str(path)!r} does not exist (the scan itself exited 0)\n"
    )
    assert not path.parent.exists()


def test_a_read_only_folder_keeps_the_old_file(
    pair: tuple[Venv, ...],
    venv_root: Path,
    store_dir: Path,
    prom_dir: Path,
    read_only: Callable[[Path], None],
) -> None:
    path = prom_dir / "gc.prom"
    assert run_cli("scan", "-q", "--store", str(store_dir), str(venv_root)).returncode == 0
    assert run_cli("gc", "--store", str(store_dir), "--metrics-file", str(path)).returncode == 0
    old, old_inode = path.read_bytes(), inode(path)
    read_only(prom_dir)

    run = run_cli("gc", "--store", str(store_dir), "--metrics-file", str(path))

    assert run.returncode == 1, run
    assert "metrics not written: cannot write in the folder" in run.stderr
    assert "(the gc itself exited 0)" in run.stderr
    assert (path.read_bytes(), inode(path)) == (old, old_inode)
    assert sorted(os.listdir(prom_dir)) == ["gc.prom"]


def test_a_file_of_another_program_is_not_replaced(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, prom_dir: Path
) -> None:
    path = prom_dir / "node.prom"
    path.write_text('# TYPE node_role gauge\nnode_role{role="db"} 1\n', encoding="utf-8")
    run = run_cli(
        "scan", "-q", "--store", str(store_dir), "--metrics-file", str(path), str(venv_root)
    )
    assert run.returncode == 1, run
    assert (
        "is not venv-dedupe's: it holds metrics venv-dedupe does not write: 'node_role'"
        in run.stderr
    )
    assert path.read_text(encoding="utf-8") == '# TYPE node_role gauge\nnode_role{role="db"} 1\n'


def test_another_commands_file_is_replaced_with_a_warning(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, prom_dir: Path
) -> None:
    path = prom_dir / "venv-dedupe.prom"
    assert (
        run_cli(
            "scan", "-q", "--store", str(store_dir), "--metrics-file", str(path), str(venv_root)
        ).returncode
        == 0
    )
    run = run_cli("gc", "--store", str(store_dir), "--metrics-file", str(path))
    assert run.returncode == 0, run
    assert run.stderr == (
        f"venv-dedupe: warning: {str(path)!r} held the figures of `venv-dedupe scan`, "
        "replaced now: give each command a metrics file of its own\n"
    )
    m = metrics(path)
    assert {dict(k)["command"] for f in m.values() for k in f.samples} == {"gc"}
    # The scan's success is not gc's: none is known for gc before this run.
    assert value(m, "venv_dedupe_last_run_success", command="gc") == 1


@pytest.mark.parametrize(
    "name", [pytest.param("scan.txt", id="other-ending"), pytest.param(".prom", id="no-name")]
)
def test_a_path_not_ending_in_prom_is_a_usage_error(
    venv_root: Path, store_dir: Path, prom_dir: Path, name: str
) -> None:
    run = run_cli(
        "scan", "--store", str(store_dir), "--metrics-file", str(prom_dir / name), str(venv_root)
    )
    assert run.returncode == 2, run
    assert "node_exporter's textfile collector reads only *.prom files" in run.stderr
    assert not store_dir.exists() and os.listdir(prom_dir) == []
