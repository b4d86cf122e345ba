"""Tests for dedupe.workers: parts run in forked children, results and failures come back,
and no child outlives its part, its siblings' failure or its parent."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import (
    copy_tree,
    finish,
    leftovers,
    sharing,
    start_child,
    wait_ready,
    without_leftovers,
)
from helpers import REPO_ROOT, MakeVenvs, snapshot, snapshot_diff

from dedupe import ScanResult, scan
from dedupe.errors import StoreError
from dedupe.store import open_store
from dedupe.workers import WorkerError, can_fork, run_parts

pytestmark = pytest.mark.skipif(not can_fork(), reason="workers fork only on Linux")


def gone(pid: int, timeout: float = 30) -> bool:
    """Whether the process pid ends (or is a zombie) within timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def reaped(pid: int) -> bool:
    """Whether our child pid has ended and been waited for: no zombie left behind."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_first_part_runs_here_the_others_in_children_and_results_come_in_order() -> None:
    ticks: list[int] = []

    def work(part: int, emit: Callable[[int], None]) -> tuple[int, int, int]:
        for _ in range(part + 1):
            emit(part)
        return part, os.getpid(), os.getppid()

    results = run_parts(work, 3, ticks.append)
    assert [r[0] for r in results] == [0, 1, 2]
    assert results[0][1] == os.getpid()
    children = {r[1] for r in results[1:]}
    assert len(children) == 2 and os.getpid() not in children
    assert {r[2] for r in results[1:]} == {os.getpid()}
    assert sorted(ticks) == [0, 1, 1, 2, 2, 2]
    assert all(reaped(pid) for pid in children)


def test_a_child_sends_its_steps_without_waiting_for_this_process(tmp_path: Path) -> None:
    """A child's steps wait in the pipe while this process works on its own part: steps
    larger than a default pipe (64 KiB) do not hold the child up until then."""
    sent = tmp_path / "sent"
    seen: list[int] = []

    def work(part: int, emit: Callable[[object], None]) -> bool:
        if part == 1:
            for i in range(4):
                emit((i, b"x" * 200_000))
            sent.touch()
            return True
        deadline = time.monotonic() + 30
        while not sent.exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # busy with its own part: takes nothing from the pipe
        return sent.exists()

    results = run_parts(work, 2, lambda step: seen.append(step[0]))
    assert results == [True, True]
    assert seen == [0, 1, 2, 3]


def test_one_part_runs_in_this_process() -> None:
    assert run_parts(lambda part, tick: os.getpid(), 1) == [os.getpid()]


def test_in_children_every_part_runs_in_a_child_of_its_own() -> None:
    """Pass 1 keeps the parent's heap as it was: the parent only collects."""
    pids = run_parts(lambda part, tick: os.getpid(), 3, in_children=True)
    assert os.getpid() not in pids
    assert len(set(pids)) == 3


def test_a_failing_part_raises_its_error_and_stops_the_others(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper"

    def work(part: int, emit: Callable[[object], None]) -> None:
        if part == 0:  # this process: stopped at its next step
            for _ in range(60_000):
                emit(None)
                time.sleep(0.01)
            raise AssertionError("the failure of part 2 never reached part 0")
        if part == 1:
            # Whole or absent: part 2 fails as soon as the name exists, and the kill
            # that follows must not cut the pid short.
            partial = tmp_path / "sleeper.partial"
            partial.write_text(str(os.getpid()))
            partial.rename(pid_file)
            time.sleep(600)
        while not pid_file.exists():
            time.sleep(0.01)
        raise StoreError(f"part {part} failed")

    with pytest.raises(StoreError, match="part 2 failed"):
        run_parts(work, 3)
    assert reaped(int(pid_file.read_text()))  # killed and waited for before the raise


def test_a_part_that_dies_is_reported_by_signal(tmp_path: Path) -> None:
    def work(part: int, emit: Callable[[object], None]) -> None:
        if part == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(WorkerError, match="killed by SIGKILL.*rerun to finish"):
        run_parts(work, 2)


def test_an_error_that_cannot_be_pickled_still_comes_back() -> None:
    class Local(Exception):  # a local class cannot be pickled
        pass

    def work(part: int, emit: Callable[[object], None]) -> None:
        if part == 1:
            raise Local("the detail")

    with pytest.raises(WorkerError, match="the detail"):
        run_parts(work, 2)


def test_children_keep_only_their_own_scans_lock(tmp_path: Path) -> None:
    """A flock lives as long as any copy of its descriptor: a child must not keep the
    lock of a scan running in another thread of this process."""
    ours, other = (open_store(str(tmp_path / n), create=True) for n in ("ours", "other"))
    assert ours is not None and other is not None
    ours.lock()
    other.lock()
    try:
        assert ours.lock_fd is not None
        locks = {str(tmp_path / n / "lock") for n in ("ours", "other")}

        def work(part: int, emit: Callable[[object], None]) -> set[str]:
            targets = set()
            for fd in os.listdir("/proc/self/fd"):
                with contextlib.suppress(OSError):  # the listing's own descriptor is gone
                    targets.add(os.readlink(f"/proc/self/fd/{fd}"))
            return targets & locks

        expected = {str(tmp_path / "ours" / "lock")}
        assert run_parts(work, 3, locks=frozenset({ours.lock_fd}))[1:] == [expected] * 2
    finally:
        ours.unlock()
        other.unlock()


def test_children_die_with_their_parent(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    script = textwrap.dedent(
        f"""
        import os, time
        from dedupe.workers import run_parts

        def work(part, tick):
            open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
            time.sleep(600)

        run_parts(work, 3)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(list(pids.iterdir())) < 3:
            assert parent.poll() is None and time.monotonic() < deadline, "no workers"
            time.sleep(0.01)
    finally:
        parent.kill()
        parent.wait()
    for worker in pids.iterdir():
        assert gone(int(worker.name)), f"worker {worker.name} outlived its parent"


# --- scans with workers ---------------------------------------------------------------------


def figures(result: ScanResult) -> dict[str, object]:
    """What a scan decided and counted, without the paths of its tree."""
    per_venv = {
        Path(v.path).name: (v.files_linked, v.files_stored, v.bytes_reclaimed, v.skipped, v.pyc)
        for v in result.venvs
    }
    return {
        "scanned": (result.files_scanned, result.files_eligible),
        "without_gain": result.files_linked_without_gain,
        "linked": result.files_linked,
        "stored": result.files_stored,
        "shared": result.files_already_shared,
        "unique": result.files_unique,
        "reclaimed": (result.bytes_reclaimed, result.apparent_bytes_reclaimed),
        "pyc": result.pyc,
        "skipped": result.skipped,
        "errors": result.errors,
        "per_venv": per_venv,
    }


def test_one_or_three_workers_share_the_same_files_and_count_the_same(
    make_venvs: MakeVenvs, tmp_path: Path
) -> None:
    """Pass 2 gives each worker the files of some sizes, so every copy of a content meets
    one planner: the decisions, figures and links are those of a single process, and a
    dry run with workers foresees a real run without."""
    root = tmp_path / "venvs"
    make_venvs(
        root,
        a=["alpha==1.0", "beta==1.0"],
        b=["alpha==1.0"],
        c=["alpha==2.0"],
        d=["alpha==2.0", "beta==1.0"],
        e=["beta==1.0"],
    )
    one, three = tmp_path / "one", tmp_path / "three"
    copy_tree(root, one)
    copy_tree(root, three)
    before = snapshot(one)

    dry = scan([three], store=tmp_path / "store3", dry_run=True, jobs=3)
    serial = scan([one], store=tmp_path / "store1", jobs=1)
    parallel = scan([three], store=tmp_path / "store3", jobs=3)

    assert serial.files_linked > 0 and serial.pyc.linked > 0
    assert figures(dry) == figures(serial) == figures(parallel)
    assert sharing(one, pycs=True) == sharing(three, pycs=True)
    assert snapshot_diff(before, snapshot(three)) == []
    assert leftovers(three, tmp_path / "store3") == []
    rerun = scan([three], store=tmp_path / "store3", jobs=3)
    assert (rerun.files_linked, rerun.files_stored, rerun.bytes_reclaimed) == (0, 0, 0)
    assert rerun.venvs_unchanged == 5  # the workers kept a memo of every venv


def test_a_killed_worker_fails_the_scan_and_the_next_scan_finishes(
    make_venvs: MakeVenvs, tmp_path: Path
) -> None:
    """SIGKILL of a forked worker mid-run (at its third replace): the scan stops its siblings and
    fails with exit status 1 and a message; every file is whole; the next scan finishes
    the job and leaves no temp name."""
    root, store = tmp_path / "venvs", tmp_path / "store"
    make_venvs(root, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0", "beta==1.0"], c=["alpha==1.0"])
    before = snapshot(root)
    child = start_child(
        {
            "op": "scan",
            "root": str(root),
            "store": str(store),
            "jobs": 2,
            "kill": {"mode": "hook", "stage": "linked", "n": 3, "in_child": True},
        }
    )
    wait_ready(child)
    run = finish(child, check=False)
    assert run.returncode == 1, run
    assert "WorkerError" in run.stderr and "killed by SIGKILL" in run.stderr, run.stderr
    assert snapshot_diff(before, without_leftovers(snapshot(root))) == []  # temp links aside

    again = scan([root], store=store, jobs=2)
    assert again.errors == ()
    assert leftovers(root, store) == []
    assert snapshot_diff(before, snapshot(root)) == []
    full = scan([root], store=store, jobs=2, full=True)
    assert (full.files_linked, full.files_stored, full.pyc.linked) == (0, 0, 0)


def test_workers_agree_without_record_sizes_and_on_pycs_python_wrote_later(
    make_venvs: MakeVenvs, tmp_path: Path
) -> None:
    """RECORD lines without a size are shared out by the file's own size; the pycs that
    Python writes beside already shared sources go to the worker of that source."""
    root = tmp_path / "venvs"
    built = make_venvs(root, a=["alpha==1.0"], b=["alpha==1.0"], c=["alpha==1.0", "beta==1.0"])
    for venv in built:
        for record in venv.site_packages.glob("*.dist-info/RECORD"):
            rows = [line.rsplit(",", 1)[0] + "," for line in record.read_text().splitlines()]
            record.write_text("\n".join(rows) + "\n")
    # Names of one length: the pycs Python writes hold their source's path.
    one, three = tmp_path / "jobs1", tmp_path / "jobs3"
    copy_tree(root, one)
    copy_tree(root, three)
    results = []
    for top, jobs in ((one, 1), (three, 3)):
        first = scan([top], store=top.with_name(top.name + "-store"), jobs=jobs)
        assert first.files_linked > 0 and first.errors == ()
        for pycache in (top / "b").rglob("alpha/__pycache__"):
            shutil.rmtree(pycache)
        pyc = top / "b" / built[1].site_packages.relative_to(root / "b") / "alpha"
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(pyc)], check=True)
        results.append(scan([top], store=top.with_name(top.name + "-store"), jobs=jobs))
    assert results[0].pyc.linked > 0
    assert figures(results[0]) == figures(results[1])
    assert sharing(one, pycs=True) == sharing(three, pycs=True)
