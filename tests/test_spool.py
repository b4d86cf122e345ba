"""Tests for dedupe.scan.spool: pass 2 takes what pass 1 found from the spool, so a run
reads each RECORD and lists each folder of a venv once, in pass 1, however many workers
pass 2 has (the memos are renewed from what pass 2 changed, listing again only the folders
it linked in); and it judges each file on what the file is when pass 2 reaches it."""

from __future__ import annotations

import marshal
import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import MakeVenvs, inode

from dedupe import scan
from dedupe.scan.spool import PREFIX, Spool, remove_stale

# Runs a scan with an audit hook that logs, with the pass it happens in, each RECORD
# opened and each folder listed through a tree's handle (discovery, the memo renewal and
# the store open a folder by its path first), in every process: forked workers inherit
# the hook, the pass and the log.
_COUNTING_SCAN = """
import os, sys
log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
phase = ["start"]
by_path = [False]  # the last folder opened was opened by its path (not by a handle's)
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and os.path.basename(args[0]) == "RECORD":
        os.write(log, f"{phase[0]}:record\\n".encode())
    elif event == "open" and isinstance(args[0], str) and (args[2] or 0) & os.O_DIRECTORY:
        by_path[0] = os.path.isabs(args[0])
    elif event == "os.scandir" and isinstance(args[0], int):
        kind = "listing-by-path" if by_path[0] else "listing"
        os.write(log, f"{phase[0]}:{kind}\\n".encode())
sys.addaudithook(hook)
from dedupe import scan
run = sys.modules["dedupe.scan.run"]
def in_phase(name, function):
    def wrapped(*args, **kwargs):
        phase[0] = name
        return function(*args, **kwargs)
    return wrapped
run.ScanRun.examine = in_phase("examine", run.ScanRun.examine)
run.ScanRun._share_part = in_phase("link", run.ScanRun._share_part)  # in each worker
run.ScanRun._renew_memos = in_phase("memos", run.ScanRun._renew_memos)
run.ScanRun.close = in_phase("end", run.ScanRun.close)
scan([sys.argv[2]], store=sys.argv[3], jobs=int(sys.argv[4]), dry_run=sys.argv[5] == "1")
"""


def _counted_scan(tmp: Path, root: Path, store: Path, jobs: int, dry_run: bool) -> Counter[str]:
    """(pass:what) -> how many times, of one scan in a child process."""
    log = tmp / f"audit-{root.name}-{jobs}-{dry_run}.log"
    argv = [sys.executable, "-c", _COUNTING_SCAN, str(log), str(root), str(store), str(jobs)]
    subprocess.run([*argv, "1" if dry_run else "0"], check=True, capture_output=True)
    return Counter(log.read_text().split())


def _dist_infos(root: Path) -> int:
    return sum(1 for _ in root.glob("*/lib/python*/site-packages/*.dist-info"))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_reads_each_record_once_per_walk_whatever_the_workers(
    make_venvs: MakeVenvs, tmp_path: Path, jobs: int
) -> None:
    """A run walks each venv once (pass 1). Pass 2 reads no RECORD and lists no folder,
    in any of its workers: before the spool, each part of pass 2 walked every venv again
    (four walks with two workers). Renewing the memos reads no RECORD either: it lists,
    by path, the folders that pass 2 linked in (before, it walked every venv again)."""
    requirements = {"a": ["alpha==1.0", "beta==1.0"], "b": ["alpha==1.0", "beta==1.0"]}
    dry_root, real_root = tmp_path / "dry", tmp_path / "real"
    make_venvs(dry_root, **requirements)
    make_venvs(real_root, **requirements)
    dists = _dist_infos(real_root)
    assert dists == _dist_infos(dry_root) == 4

    dry = _counted_scan(tmp_path, dry_root, tmp_path / "dry-store", jobs, dry_run=True)
    real = _counted_scan(tmp_path, real_root, tmp_path / "real-store", jobs, dry_run=False)

    assert dry["examine:record"] == real["examine:record"] == dists
    assert dry["examine:listing"] == real["examine:listing"] > 0
    assert real["memos:record"] == real["memos:listing"] == 0
    # The folders of the linked files, and the __pycache__ folders of their pycs.
    assert 0 < real["memos:listing-by-path"] < real["examine:listing"]
    for counts in (dry, real):  # pass 2, in every worker: nothing read again
        assert counts["link:record"] == counts["link:listing"] == 0
    # Discovery lists folders by path before pass 1, as does a tree its root: in the
    # passes, only pass 1 and the renewal list (no "link:" entry at all).
    assert set(dry) | set(real) <= {
        "start:listing-by-path", "examine:record", "examine:listing",
        "examine:listing-by-path", "memos:listing-by-path",
    }  # fmt: skip


def test_pass_2_judges_a_file_on_what_it_is_when_it_gets_there(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path
) -> None:
    """A file that grew between the passes is not linked (pass 1's size is not trusted),
    and keeps its new bytes; its twin in the other venv is linked with the rest."""
    a, b = make_venvs(venv_root, a=["alpha==1.0"], b=["alpha==1.0"])
    grown = b.site_packages / "alpha" / "util.py"
    edited: list[str] = []

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "link" and not edited:
            with grown.open("ab") as f:
                f.write(b"# grown between the passes\n")
            edited.append(phase)

    before = grown.read_bytes()
    result = scan([venv_root], store=store_dir, jobs=1, progress=progress)

    assert edited == ["link"]
    assert grown.read_bytes() == before + b"# grown between the passes\n"
    assert grown.stat().st_nlink == 1
    table = b.site_packages / "alpha" / "data" / "table.csv"
    assert inode(table) == inode(a.site_packages / "alpha" / "data" / "table.csv")
    assert result.files_linked > 0
    assert result.errors == ()


def test_a_spool_is_read_back_row_for_row(tmp_path: Path) -> None:
    spool = Spool()
    try:
        assert stat.S_IMODE(os.stat(spool.folder).st_mode) == 0o700
        rows = [
            ("lib/m.py", "sha256", b"\x01" * 32, 12, "m-1.0", (("lib/__pycache__/x", 7, "t"),)),
            ("lib/n.py", 42, ()),
            ("lib/\udcff.py", "sha256", b"\x02" * 32, 3, "m-1.0", ()),  # undecodable name
        ]
        keep = spool.writer(0)
        for row in rows:
            keep(row)
        assert spool.read(0) is None  # not whole until closed
        keep.close()
        assert stat.S_IMODE(os.stat(os.path.join(spool.folder, "0")).st_mode) == 0o600
        found = spool.read(0)
        assert found is not None
        assert list(found) == rows
        assert spool.read(1) is None  # a venv pass 1 did not walk
    finally:
        spool.close()
    assert not os.path.exists(spool.folder)


def test_a_spool_cut_short_is_never_read(tmp_path: Path) -> None:
    spool = Spool()
    try:
        keep = spool.writer(0)
        keep(("lib/n.py", 42, ()))
        keep.discard()
        keep.close()  # after a discard: names nothing
        assert spool.read(0) is None
        assert os.listdir(spool.folder) == []
    finally:
        spool.close()


def test_a_scan_leaves_no_spool_behind(
    make_venvs: MakeVenvs,
    venv_root: Path,
    store_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spools = tmp_path / "tmp"
    spools.mkdir()
    monkeypatch.setenv("TMPDIR", str(spools))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    make_venvs(venv_root, a=["alpha==1.0"], b=["alpha==1.0"])
    during: list[list[str]] = []

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "link" and not during:
            during.append(os.listdir(spools))

    scan([venv_root], store=store_dir, jobs=2, progress=progress)
    assert len(during) == 1 and len(during[0]) == 1  # the run's spool folder
    assert during[0][0].startswith("venv-dedupe-spool-")
    assert os.listdir(spools) == []


# A run in a child process: it makes its spool, says where, and ends when told to.
_HOLDING_RUN = """
import sys
from dedupe.scan.spool import Spool
spool = Spool()
print(spool.folder, flush=True)
sys.stdin.read()
spool.close()
"""


def _held_spool(tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    """A child holding the spool it made in tmp, with a file in it."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDING_RUN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    assert child.stdout is not None
    folder = Path(child.stdout.readline().strip())
    (folder / "0").write_bytes(b"rows")
    return child, folder


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_the_spool_a_killed_run_left_is_removed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    child, folder = _held_spool(tmp_path)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert (folder / "0").exists()  # kill -9: its run could not remove it
    _age(folder, 61)
    spool = Spool()
    try:
        assert not folder.exists()
        assert os.listdir(tmp_path) == [os.path.basename(spool.folder)]
    finally:
        spool.close()


def test_a_spool_never_uses_a_folder_made_in_place_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where its lock could not be taken, another run may remove a live run's folder as
    stale, and anyone may make one of that name in the temp folder: the run neither reads
    nor writes nor removes it."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    spool = Spool()
    folder = Path(spool.folder)
    os.rmdir(folder)
    folder.mkdir()
    (folder / "0").write_bytes(marshal.dumps(("lib/planted.py", 1, ())))
    keep = spool.writer(1)
    keep(("lib/n.py", 42, ()))
    keep.close()
    assert spool.read(0) is None and spool.read(1) is None
    spool.close()
    assert os.listdir(folder) == ["0"]


def test_a_live_run_keeps_its_spool_however_old(tmp_path: Path) -> None:
    child, folder = _held_spool(tmp_path)
    try:
        _age(folder, 3600)
        assert remove_stale(str(tmp_path)) == 0
        assert (folder / "0").read_bytes() == b"rows"
    finally:
        child.communicate("")  # its end removes it
    assert not folder.exists()


def test_a_spool_is_kept_for_a_minute_before_its_run_can_have_locked_it(
    tmp_path: Path,
) -> None:
    young = tmp_path / f"{PREFIX}young"
    young.mkdir()
    assert remove_stale(str(tmp_path)) == 0
    _age(young, 61)
    assert remove_stale(str(tmp_path)) == 1
    assert not young.exists()


def test_what_only_looks_like_a_stale_spool_is_left_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"theirs")
    link = tmp_path / f"{PREFIX}link"
    link.symlink_to(outside)
    plain = tmp_path / f"{PREFIX}file"
    plain.write_bytes(b"a file")
    for path in (outside, link, plain):
        _age(path, 3600)
    assert remove_stale(str(tmp_path)) == 0
    assert (outside / "keep").read_bytes() == b"theirs"
    assert link.is_symlink() and plain.read_bytes() == b"a file"


def test_another_users_spool_is_left_alone(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a folder of another user needs root")
    theirs = tmp_path / f"{PREFIX}theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    _age(theirs, 3600)
    assert remove_stale(str(tmp_path)) == 0
    assert theirs.is_dir()
