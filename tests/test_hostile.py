"""Hostile and broken input (issue #3): each case in its own tree, ending with its skip
reason or report entry asserted and a snapshot showing that nothing else changed.

Cases tested elsewhere, and not repeated here:

* a RECORD path that climbs out of the venv: casebook "outside-relative" (test_skips.py);
* an absolute RECORD path: casebook "outside-absolute";
* a symlink in place of a recorded file pointing out of the venv: casebook
  "symlink-file" (and "symlink-folder" for a symlinked folder on the way);
* a recorded file that is a FIFO: test_odd_files.py::
  test_fifo_in_place_of_a_recorded_file_does_not_block;
* a folder where RECORD lists a file: casebook "folder";
* garbage RECORD lines (no commas, bad base64, four fields, an open quote, a negative
  size): casebook "malformed-lines", and the parser's cases in test_records.py;
* a recorded file that is missing: casebook "missing";
* a hash in a weak (md5, sha1, sha224), unknown or empty algorithm: casebook "md5",
  "sha1", "sha224", "unknown-algorithm", "empty-hash";
* a wrong size: casebook "record-size-differs";
* a file edited after install: casebook "append", "same-size-edit", "record-lies";
* a file owned by another user or group (root only): casebook "other-uid", "other-gid";
* a file with other permission bits: casebook "mode-0600", "mode-0664";
* a whole venv on a read-only mount: test_cli.py::test_link_failure_is_an_error_and_exits_1
  (here: one read-only folder inside a venv that is otherwise shared).
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    MakeVenvs,
    Venv,
    append_record_lines,
    disk_usage,
    file_sha256,
    run_cli,
    snapshot,
    snapshot_diff,
    store_content_folders,
    temp_leftovers,
)
from wheelbuilder import record_hash

from dedupe import ScanResult, VenvReport, scan, verify
from dedupe.link import steps
from dedupe.tree import At

DIST_INFO = "alpha-1.0.dist-info"
IS_ROOT = os.geteuid() == 0
MiB = 1 << 20
# ``pair`` (conftest.py): venvs a and b in venv_root with the same alpha 1.0.


def report(result: ScanResult, venv: Venv) -> VenvReport:
    (found,) = (r for r in result.venvs if os.path.realpath(r.path) == os.path.realpath(venv.path))
    return found


def same_inode(a: Path, b: Path) -> bool:
    return os.lstat(a).st_ino == os.lstat(b).st_ino


def file_record_line(venv: Venv, relpath: str) -> str:
    data = venv.file(relpath).read_bytes()
    return f"{relpath},{record_hash(data)},{len(data)}"


def check_clean(root: Path, store: Path) -> None:
    """No temp name left behind and every store object intact."""
    assert temp_leftovers(root) == []
    assert not store.exists() or temp_leftovers(store) == []
    checked = verify([root], store=store) if store.exists() else None
    assert checked is None or checked.ok, checked


# --- not regular files, not followed ---------------------------------------------------------


@pytest.mark.parametrize("into", ["same-venv", "other-venv"])
def test_a_symlink_pointing_inside_the_root_is_not_followed(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, into: str
) -> None:
    """b's util.py becomes a symlink to an identical file inside b, or to a's util.py:
    both have the recorded bytes, and neither may be reached through the link."""
    a, b = pair
    if into == "same-venv":
        target = b.file("alpha/util_copy.py")
        target.write_bytes(b.file("alpha/util.py").read_bytes())
    else:
        target = a.file("alpha/util.py")
    b.file("alpha/util.py").unlink()
    b.file("alpha/util.py").symlink_to(target)
    target_ino = os.lstat(target).st_ino
    before = snapshot(venv_root)

    result = scan([venv_root], store=store_dir)

    assert report(result, b).skipped.get("symlink") == 1, report(result, b).skipped
    assert report(result, a).skipped.get("symlink") is None
    assert os.readlink(b.file("alpha/util.py")) == str(target)
    if into == "same-venv":
        # An unrecorded file is never touched, even when the symlink names it.
        assert (os.lstat(target).st_ino, os.lstat(target).st_nlink) == (target_ino, 1)
    assert snapshot_diff(before, snapshot(venv_root)) == []
    assert same_inode(a.file("alpha/core.py"), b.file("alpha/core.py"))
    check_clean(venv_root, store_dir)


def make_socket(path: Path, scratch: Path) -> None:
    """A UNIX socket at path (bound at a short name first: sun_path holds 108 bytes)."""
    short = scratch / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(short))
    path.unlink()
    os.rename(short, path)


def make_zero_device(path: Path, _: Path) -> None:
    """A character device like /dev/zero: reading it never ends, so a scan that opened
    and hashed it would hang (the subprocess timeout turns that into a failure)."""
    path.unlink()
    try:
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError as exc:
        pytest.skip(f"mknod is not allowed here: {exc}")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(make_socket, id="socket"),
        pytest.param(
            make_zero_device,
            id="char-device",
            marks=pytest.mark.skipif(not IS_ROOT, reason="mknod of a device needs root"),
        ),
    ],
)
def test_a_socket_or_device_in_place_of_a_recorded_file_is_not_opened(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path, make: Any
) -> None:
    a, b = pair
    recorded = b.file("alpha/util.py")
    make(recorded, tmp_path)
    kind = stat.S_IFMT(os.lstat(recorded).st_mode)
    before = snapshot(venv_root)

    run = run_cli("scan", str(venv_root), "--store", str(store_dir), "--json", timeout=120)

    assert run.returncode == 0, run
    result = run.json()
    b_report = next(v for v in result["venvs"] if Path(v["path"]).name == "b")
    assert b_report["skipped"].get("not-regular-file") == 1, b_report["skipped"]
    assert result["skipped"].get("not-regular-file") == 1, result["skipped"]
    assert stat.S_IFMT(os.lstat(recorded).st_mode) == kind
    assert snapshot_diff(before, snapshot(venv_root)) == []
    assert same_inode(a.file("alpha/core.py"), b.file("alpha/core.py"))
    check_clean(venv_root, store_dir)


# --- broken RECORDs ----------------------------------------------------------------------------

GARBAGE = (
    b"\x00\x01binary\x00,sha256=AAAA,1\n",  # a NUL in the path
    b"\xff\xfe\xfd not utf-8 and no commas\n",
    b'"an open quote,sha256=AAAA,1\n',
)


def test_a_truncated_record_with_binary_garbage(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """b's RECORD starts with binary garbage and is cut in the middle of the core.py
    line (as a full disk or a kill during a write leaves it): every bad line is a
    malformed-record skip and a warning naming the RECORD; the lines before the cut
    are used, the files after it are not shared."""
    a, b = pair
    record = b.record(DIST_INFO)
    text = record.read_bytes()
    cut = text.index(b"alpha/core.py,") + len(b"alpha/core.py,sha256=9d")
    record.write_bytes(b"".join(GARBAGE) + text[:cut])
    before = snapshot(venv_root)

    result = scan([venv_root], store=store_dir)

    assert report(result, b).skipped.get("malformed-record") == len(GARBAGE) + 1
    assert report(result, a).skipped.get("malformed-record") is None
    assert {w.path for w in result.warnings} == {str(record)}, result.warnings
    assert len(result.warnings) == len(GARBAGE) + 1
    assert result.errors == ()
    for relpath in ("alpha/__init__.py", "alpha/cli.py", f"{DIST_INFO}/METADATA"):
        assert same_inode(a.file(relpath), b.file(relpath)), relpath
    for relpath in ("alpha/core.py", "alpha/util.py", "alpha/data/table.csv"):
        assert os.lstat(b.file(relpath)).st_nlink == 1, relpath
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)


def test_a_distribution_without_record(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b = pair
    b.record(DIST_INFO).unlink()
    before = snapshot(venv_root)

    result = scan([venv_root], store=store_dir)

    assert report(result, b).skipped.get("missing-record") == 1, report(result, b).skipped
    assert report(result, a).skipped.get("missing-record") is None
    assert [w.path for w in result.warnings] == [str(b.record(DIST_INFO))]
    for relpath in ("alpha/core.py", "alpha/util.py", f"{DIST_INFO}/METADATA"):
        assert os.lstat(b.file(relpath)).st_nlink == 1, relpath
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)


# --- names ------------------------------------------------------------------------------------

NON_UTF8 = b"alpha/caf\xe9-\xff.dat"


def test_non_utf8_names_are_shared_and_reported(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """A recorded file whose name is not UTF-8 (RECORD holds the raw bytes, as a wheel
    built on a Latin-1 system could), in a venv whose own folder name is not UTF-8."""
    a, b = pair
    data = random.Random("non-utf8").randbytes(20_000)
    for venv in (a, b):
        name = os.fsencode(venv.site_packages) + b"/" + NON_UTF8
        with open(name, "wb") as out:
            out.write(data)
        with open(venv.record(DIST_INFO), "ab") as out:
            out.write(NON_UTF8 + f",{record_hash(data)},{len(data)}\n".encode())
    odd = venv_root / os.fsdecode(b"b-\xff")
    os.rename(b.path, odd)
    b = Venv(odd)
    before = snapshot(venv_root)

    run = run_cli("scan", str(venv_root), "--store", str(store_dir), "--json")

    assert run.returncode == 0, run
    result = run.json()
    assert result["errors"] == [] and result["warnings"] == [], result
    assert sorted(v["path"] for v in result["venvs"]) == [str(a.path), str(b.path)]
    shared = [os.fsencode(v.site_packages) + b"/" + NON_UTF8 for v in (a, b)]
    assert os.lstat(shared[0]).st_ino == os.lstat(shared[1]).st_ino
    assert snapshot_diff(before, snapshot(venv_root)) == []
    text = run_cli("scan", str(venv_root), "--store", str(store_dir))
    assert text.returncode == 0, text
    # The text report shows the undecodable byte as an escape instead of failing on it.
    assert "b-\\xff" in text.stdout or "b-\\udcff" in text.stdout, text.stdout
    check_clean(venv_root, store_dir)


# --- a file that changes while it is linked -------------------------------------------------

APPENDED = b"# appended while the scan was linking this file\n"


@pytest.mark.parametrize(
    ("stage", "victim"),
    [
        # Right after the file's own inode became the store object.
        pytest.param("adopted", "a", id="after-adopt"),
        # After the temp link to the object exists, before the re-stat.
        pytest.param("linked", "b", id="after-temp-link"),
        # After the re-stat, right before the atomic swap.
        pytest.param("checked", "b", id="after-re-stat"),
    ],
)
def test_a_file_written_between_hash_and_replace_keeps_its_bytes(
    make_venvs: MakeVenvs,
    venv_root: Path,
    store_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    victim: str,
) -> None:
    """Someone appends to util.py (through its path: the inode itself changes) after the
    scan proved its bytes: the scan must leave it alone, counted as changed-during-scan,
    with the appended bytes, and link the other venvs' copies among themselves."""
    built = make_venvs(venv_root, **{n: ["alpha==1.0"] for n in "abc"})
    venvs = dict(zip("abc", built, strict=True))
    target = venvs[victim].file("alpha/util.py")
    original, ino = target.read_bytes(), os.lstat(target).st_ino
    before = snapshot(venv_root)
    written = []

    def hook(name: str, at: At) -> None:
        if name == stage and not written and at.path == str(target):
            with open(target, "ab") as out:
                out.write(APPENDED)
            written.append(name)

    monkeypatch.setattr(steps, "fault_hook", hook)
    result = scan([venv_root], store=store_dir, jobs=1)  # the hook's list lives in this process
    monkeypatch.setattr(steps, "fault_hook", None)

    assert written == [stage], "the hook never saw the target file"
    skipped = report(result, venvs[victim]).skipped
    assert skipped.get("changed-during-scan") == 1, skipped
    assert result.skipped.get("changed-during-scan") == 1, result.skipped
    assert result.errors == ()
    assert target.read_bytes() == original + APPENDED
    assert (os.lstat(target).st_ino, os.lstat(target).st_nlink) == (ino, 1)
    others = [v.file("alpha/util.py") for n, v in venvs.items() if n != victim]
    assert same_inode(*others)
    assert others[0].read_bytes() == original
    after = snapshot(venv_root)
    key = str(target.relative_to(venv_root))
    assert after[key].content == hashlib.sha256(original + APPENDED).hexdigest()
    assert snapshot_diff({**before, key: after[key]}, after) == []
    check_clean(venv_root, store_dir)


# --- folders that cannot be written -----------------------------------------------------------


def test_a_read_only_folder_inside_a_venv(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, read_only: Any
) -> None:
    """b's alpha/data cannot be written: its table.csv cannot be replaced by a link
    (link-failed, an error), and the rest of b is shared as usual."""
    a, b = pair
    read_only(b.file("alpha/data"))
    table = b.file("alpha/data/table.csv")
    ino = os.lstat(table).st_ino
    before = snapshot(venv_root)

    result = scan([venv_root], store=store_dir)

    assert report(result, b).skipped.get("link-failed") == 1, report(result, b).skipped
    assert [e.path for e in result.errors] == [str(table)], result.errors
    assert os.lstat(table).st_ino == ino
    assert same_inode(a.file("alpha/util.py"), b.file("alpha/util.py"))
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)


# --- sizes and blocks -------------------------------------------------------------------------


def add_recorded_file(venvs: tuple[Venv, ...], relpath: str, write: Any) -> None:
    """Write the same file into each venv with write(path) and list it in RECORD."""
    for venv in venvs:
        write(venv.file(relpath))
        append_record_lines(venv, DIST_INFO, file_record_line(venv, relpath))


def scan_adding(
    venvs: tuple[Venv, ...], root: Path, store: Path, relpath: str, write: Any
) -> tuple[ScanResult, int, int, dict[str, Any]]:
    """Scan once, add the file to every venv, scan again: (second result, allocated
    bytes freed as du sees them, blocks of the last venv's copy before, snapshot)."""
    first = scan([root], store=store)
    assert first.errors == ()
    add_recorded_file(venvs, relpath, write)
    blocks = os.lstat(venvs[-1].file(relpath)).st_blocks * 512
    before = snapshot(root)
    usage_before = disk_usage(root, *store_content_folders(store))
    result = scan([root], store=store)
    freed = usage_before.allocated - disk_usage(root, *store_content_folders(store)).allocated
    return result, freed, blocks, before


def test_a_very_large_file_in_two_venvs(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    data = random.Random("large").randbytes(64 * MiB)
    relpath = "alpha/data/big.bin"
    result, freed, blocks, before = scan_adding(
        pair, venv_root, store_dir, relpath, lambda path: path.write_bytes(data)
    )

    assert (result.files_linked, result.files_stored) == (1, 1), result
    assert result.apparent_bytes_reclaimed == 64 * MiB
    assert result.bytes_reclaimed == blocks == freed >= 64 * MiB
    assert same_inode(*(v.file(relpath) for v in pair))
    assert file_sha256(pair[1].file(relpath)) == hashlib.sha256(data).hexdigest()
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)


def write_sparse(path: Path) -> None:
    """64 MiB apparent, three small extents on disk."""
    with open(path, "wb") as out:
        out.truncate(64 * MiB)
        for offset in (0, 31 * MiB, 64 * MiB - 5):
            out.seek(offset)
            out.write(b"hole!")


def test_a_sparse_file_counts_its_allocated_blocks(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    relpath = "alpha/data/sparse.bin"
    result, freed, blocks, before = scan_adding(pair, venv_root, store_dir, relpath, write_sparse)

    assert blocks < MiB, "precondition: the filesystem keeps the holes"
    assert (result.files_linked, result.files_stored) == (1, 1), result
    assert result.apparent_bytes_reclaimed == 64 * MiB
    # Reclaimed is what the blocks give back (st_blocks), not the apparent size.
    assert result.bytes_reclaimed == blocks == freed
    assert same_inode(*(v.file(relpath) for v in pair))
    assert os.lstat(pair[0].file(relpath)).st_blocks * 512 < MiB, "the object stays sparse"
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)


def test_a_file_hardlinked_outside_the_venvs_reclaims_nothing(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, outside_dir: Path
) -> None:
    """b's util.py has another name outside every venv (a cache, a backup): linking b's
    path to the object frees nothing, since the inode lives on under that name."""
    a, b, c = make_venvs(venv_root, **{n: ["alpha==1.0"] for n in "abc"})
    outside = outside_dir / "util.py"
    os.link(b.file("alpha/util.py"), outside)
    outside_ino, util_blocks = os.lstat(outside).st_ino, os.lstat(outside).st_blocks * 512
    before, outside_before = snapshot(venv_root), snapshot(outside_dir)
    usage_before = disk_usage(venv_root, outside_dir)

    result = scan([venv_root], store=store_dir)

    assert result.files_linked_without_gain == 1, result
    # The other name is in no installer's cache: the report says it was not found.
    assert result.replaced_names_elsewhere.found == ()
    assert result.replaced_names_elsewhere.not_found == 1
    assert report(result, b).files_linked_without_gain == 1
    assert report(result, b).files_linked == report(result, c).files_linked
    assert report(result, b).bytes_reclaimed == report(result, c).bytes_reclaimed - util_blocks
    usage_after = disk_usage(venv_root, outside_dir, *store_content_folders(store_dir))
    assert result.bytes_reclaimed == usage_before.allocated - usage_after.allocated
    assert same_inode(a.file("alpha/util.py"), b.file("alpha/util.py"))
    assert (os.lstat(outside).st_ino, os.lstat(outside).st_nlink) == (outside_ino, 1)
    assert snapshot_diff(outside_before, snapshot(outside_dir)) == []
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)


# --- venvs and roots --------------------------------------------------------------------------


def test_a_pyvenv_cfg_without_home_is_no_venv(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path
) -> None:
    a, b, c = make_venvs(venv_root, **{n: ["alpha==1.0"] for n in "abc"})
    cfg = c.path / "pyvenv.cfg"
    cfg.write_text(
        "".join(line + "\n" for line in cfg.read_text().splitlines() if "home" not in line)
    )
    before = snapshot(venv_root)

    result = scan([venv_root], store=store_dir)

    reasons = {os.path.realpath(s.path): s.reason for s in result.skipped_venvs}
    assert list(reasons) == [os.path.realpath(c.path)], result.skipped_venvs
    assert "home" in reasons[os.path.realpath(c.path)]
    assert {Path(v.path).name for v in result.venvs} == {"a", "b"}
    assert os.lstat(c.file("alpha/util.py")).st_nlink == 1
    assert same_inode(a.file("alpha/util.py"), b.file("alpha/util.py"))
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)


def test_symlink_loops_in_a_root_end_the_walk(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    """A root holding a link to itself, a link to its parent, a cycle of two links, and
    given twice (once through a symlink): every venv is found once, nothing hangs."""
    a, b = pair
    nest = venv_root / "nest" / "deeper"
    nest.mkdir(parents=True)
    (venv_root / "self").symlink_to(".")
    (nest / "up").symlink_to("../..")
    (venv_root / "x").symlink_to("y")
    (venv_root / "y").symlink_to("x")
    (a.path / "loop").symlink_to(venv_root)  # inside a venv: never walked either
    root_link = tmp_path / "root-link"
    root_link.symlink_to(venv_root)
    before = snapshot(venv_root)

    run = run_cli(
        "scan", str(venv_root), str(root_link), "--store", str(store_dir), "--json", timeout=60
    )

    assert run.returncode == 0, run
    result = run.json()
    assert sorted(Path(v["path"]).name for v in result["venvs"]) == ["a", "b"]
    assert result["skipped_venvs"] == [] and result["errors"] == [], result
    assert same_inode(a.file("alpha/core.py"), b.file("alpha/core.py"))
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)


def test_an_empty_store_folder_made_by_the_user(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """An empty --store folder is taken as the store, and stays usable run after run."""
    store_dir.mkdir()
    before = snapshot(venv_root)

    first = scan([venv_root], store=store_dir)
    second = scan([venv_root], store=store_dir)

    assert first.errors == () and first.files_linked > 0, first
    assert (second.errors, second.files_linked, second.files_stored) == ((), 0, 0), second
    assert (store_dir / "FORMAT").is_file()
    assert snapshot_diff(before, snapshot(venv_root)) == []
    check_clean(venv_root, store_dir)
