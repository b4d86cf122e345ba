"""Concurrent safety (DESIGN invariant 6, issue #3): two runs on one store, and pip
installing and uninstalling in a venv while it is scanned, again and again.

* A scan holds the lock: another exits 2 at once with --no-wait, naming its pid, or
  waits (saying so once) and then finds the work done; the store stays consistent.
* Two scans start together on a store that does not exist yet: the first is paused at
  each line instant where the store folder exists without its FORMAT, and the second
  runs from start to end right then; both must end well.
* pip upgrades, downgrades, uninstalls and reinstalls in one venv while a loop of scans
  runs over it: after each step every file pip installed matches its RECORD, the files
  it removed are gone, the packages import; the other venvs do not change at all.

The runs under test are child processes (faultkit.py). Their ``fault_hook`` holds the
first scan at its first link until released, or sleeps a little between the temp link,
the re-stat and the swap, to widen the windows pip can hit; a line tracer pauses a scan
at a chosen instant of store creation.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from faultkit import child_env as faultkit_env
from faultkit import copy_tree, finish, leftovers, start_child, wait_ready
from helpers import (
    MakeVenvs,
    Venv,
    pip,
    pip_install,
    run_python,
    snapshot,
    snapshot_diff,
)

from dedupe import scan, verify

# The scans racing pip: short sleeps between the temp link, the check and the swap.
RACING = {"linked": 0.004, "checked": 0.004}


def start_cli(*args: str, pycache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dedupe", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=faultkit_env(pycache),
    )


def wait_for(path: Path, child: subprocess.Popen[str], timeout: float = 60) -> bool:
    """Wait until path exists (True) or the child has ended (False)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            return path.exists()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)
    return True


def check_consistent(root: Path, store: Path, before: dict[str, Any]) -> None:
    """Every file as it was, no temp name left, every object intact, nothing left to do."""
    assert snapshot_diff(before, snapshot(root)) == []
    assert leftovers(root, store) == []
    checked = verify([root], store=store)
    assert checked.ok, (checked.damaged, checked.errors)
    rerun = scan([root], store=store)
    assert (rerun.errors, rerun.files_linked, rerun.files_stored) == ((), 0, 0), rerun


# --- two runs at once -----------------------------------------------------------------------


def test_a_second_scan_exits_2_with_no_wait_or_waits_for_the_first(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    """The first scan holds the lock (held still at its first link until released); a
    second with --no-wait exits 2 naming it; a third waits, says so once, and runs when
    the first is done. Both runs that ran end well, on a consistent store."""
    make_venvs(
        venv_root, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0"], c=["alpha==2.0", "beta==1.0"]
    )
    before = snapshot(venv_root)
    pycache, locked, release = tmp_path / "pycache", tmp_path / "locked", tmp_path / "release"
    first = start_child(
        {
            "op": "scan",
            "root": str(venv_root),
            "store": str(store_dir),
            "mark": str(locked),
            "release": str(release),
        },
        pycache,
    )
    wait_ready(first)
    assert wait_for(locked, first), finish(first)

    no_wait = start_cli(
        "scan", str(venv_root), "--store", str(store_dir), "--no-wait", pycache=pycache
    )
    out, err = no_wait.communicate(timeout=60)
    assert no_wait.returncode == 2, (out, err)
    assert "lock" in err and f"pid {first.pid}" in err, err

    waiting = start_cli(
        "scan",
        str(venv_root),
        "--store",
        str(store_dir),
        "--lock-timeout",
        "60",
        "--json",
        pycache=pycache,
    )
    assert waiting.stderr is not None
    said = waiting.stderr.readline()
    assert "waiting up to 60 s" in said and f"pid {first.pid}" in said, said
    release.touch()
    out, err = waiting.communicate(timeout=120)
    first_run = finish(first)
    assert waiting.returncode == 0, (out, err)
    assert "waiting" not in err, "told once only"
    assert first_run.returncode == 0 and first_run.summary is not None, first_run
    assert first_run.summary["errors"] == [], first_run.summary
    second = json.loads(out)
    # The first did the work; the waiting one found it done.
    assert first_run.summary["linked"] > 10, first_run.summary
    assert (second["files_linked"], second["files_stored"], second["errors"]) == (0, 0, [])
    done = first_run.summary["linked"] + first_run.summary["stored"]
    assert second["files_already_shared"] == done, (second, first_run.summary)
    check_consistent(venv_root, store_dir, before)


def test_two_scans_starting_together_while_the_store_is_made(
    make_venvs: MakeVenvs, tmp_path: Path
) -> None:
    """Two cron jobs start at once on a new store: the first is paused at each line
    instant where the store folder exists but has no FORMAT yet, and the second runs
    from start to end right then. Both must end well (exit 0), on a consistent store.
    """
    pristine = tmp_path / "pristine"
    make_venvs(pristine / "venvs", a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0"])
    before = snapshot(pristine / "venvs")
    pycache = tmp_path / "pycache"

    def paused_config(trial: Path, n: int) -> dict[str, Any]:
        return {
            "op": "scan",
            "root": str(trial / "venvs"),
            "store": str(trial / "store"),
            "lock_timeout": 60,
            "kill": {
                "mode": "line",
                "files": [f"store/{m}.py" for m in ("names", "layout", "opening")],
                "until": "lock",
                "when": {
                    "exists": str(trial / "store"),
                    "missing": str(trial / "store" / "FORMAT"),
                },
                "action": "pause",
                "paused": str(trial / "paused"),
                "resume": str(trial / "resume"),
                "n": n,
            },
        }

    probe = tmp_path / "probe"
    copy_tree(pristine, probe)
    counting = start_child(paused_config(probe, 0), pycache)
    wait_ready(counting)
    instants = finish(counting).summary["seen"]  # type: ignore[index]
    print(f"line instants with a store folder and no FORMAT: {instants}")

    def round_at(n: int) -> str | None:
        """The second scan run while the first is paused at its Nth instant: what went
        wrong, or None."""
        trial = tmp_path / f"trial-{n}"
        copy_tree(pristine, trial)
        first = start_child(paused_config(trial, n), pycache)
        wait_ready(first)
        assert wait_for(trial / "paused", first), finish(first)
        where = (trial / "paused").read_text()
        second = start_cli(
            "scan",
            str(trial / "venvs"),
            "--store",
            str(trial / "store"),
            "--lock-timeout",
            "20",
            pycache=pycache,
        )
        _, err = second.communicate(timeout=120)
        (trial / "resume").touch()
        first_run = finish(first, check=False)
        what = f"the second scan ran while the first was paused at {where}"
        if second.returncode != 0:
            return f"{what}: the second exited {second.returncode}: {err.strip()}"
        if first_run.returncode != 0 or first_run.summary is None:
            last = first_run.stderr.strip().splitlines()[-1:]
            return f"{what}: the first exited {first_run.returncode}: {last}"
        try:
            check_consistent(trial / "venvs", trial / "store", before)
        except AssertionError as exc:
            return f"{what}: {exc}"
        return None

    # The rounds wait on each other through files, not time: two at once is safe.
    with ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(round_at, range(1, instants + 1)) if f is not None]
    assert failures == [], "\n".join(failures)


# --- pip while the scan runs ----------------------------------------------------------------


def record_problems(venv: Venv) -> list[str]:
    """Every RECORD entry with a hash whose file is missing or has other bytes."""
    problems = []
    for record in sorted(venv.site_packages.glob("*.dist-info/RECORD")):
        for row in csv.reader(record.read_text(encoding="utf-8").splitlines()):
            path, hash_field, size = row
            if not hash_field:
                continue
            algorithm, _, digest = hash_field.partition("=")
            full = Path(os.path.normpath(venv.site_packages / path))
            try:
                data = full.read_bytes()
            except OSError as exc:
                problems.append(f"{full}: {exc}")
                continue
            actual = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest())
            if actual.rstrip(b"=").decode() != digest or len(data) != int(size):
                problems.append(f"{full}: not the bytes its RECORD names")
    return problems


def recorded_paths(venv: Venv, dist_info: str) -> list[Path]:
    record = venv.record(dist_info).read_text(encoding="utf-8").splitlines()
    return [Path(os.path.normpath(venv.site_packages / row[0])) for row in csv.reader(record)]


def test_pip_install_and_uninstall_while_the_venv_is_scanned_again_and_again(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    a, b, target = make_venvs(
        venv_root,
        a=["alpha==1.0", "beta==1.0"],
        b=["alpha==2.0"],
        t=["alpha==1.0", "beta==1.0"],
    )
    others_before = {v.path.name: snapshot(v.path) for v in (a, b)}
    stop = tmp_path / "stop"
    loop = start_child(
        {
            "op": "scan-loop",
            "root": str(venv_root),
            "store": str(store_dir),
            "stop": str(stop),
            "sleep": RACING,
            "between": 0.01,
            "lock_timeout": 60,
        },
        tmp_path / "pycache",
    )
    wait_ready(loop)

    def check(versions: dict[str, str], gone: list[Path]) -> None:
        assert record_problems(target) == []
        assert [p for p in gone if os.path.lexists(p)] == []
        names = sorted(versions)
        code = f"import {', '.join(['sys', *names])}\n"
        code += f"print({', '.join(n + '.__version__' for n in names) or repr('')})\n"
        if "alpha" in versions:
            code += "import alpha.cli; alpha.cli.main()\n"
        lines = run_python(target, code).splitlines()
        assert lines[0].split() == [versions[n] for n in names]
        if "alpha" in versions:
            assert lines[1].split() == ["alpha-cli", versions["alpha"], "42", "42"]

    try:
        pip_install(target, wheelhouse, "--upgrade", "alpha==2.0")
        check({"alpha": "2.0", "beta": "1.0"}, [target.site_packages / "alpha-1.0.dist-info"])
        beta_files = recorded_paths(target, "beta-1.0.dist-info")
        pip(target, "uninstall", "-y", "-q", "beta")
        check({"alpha": "2.0"}, beta_files)
        pip_install(target, wheelhouse, "beta==1.0")
        check({"alpha": "2.0", "beta": "1.0"}, [])
        pip_install(target, wheelhouse, "--force-reinstall", "--no-deps", "alpha==1.0")
        check({"alpha": "1.0", "beta": "1.0"}, [target.site_packages / "alpha-2.0.dist-info"])
        every_file = recorded_paths(target, "alpha-1.0.dist-info") + recorded_paths(
            target, "beta-1.0.dist-info"
        )
        pip(target, "uninstall", "-y", "-q", "alpha", "beta")
        check({}, every_file)
        pip_install(target, wheelhouse, "alpha==1.0", "beta==1.0")
        check({"alpha": "1.0", "beta": "1.0"}, [])
    finally:
        stop.touch()
        looped = finish(loop)
    assert looped.returncode == 0 and looped.summary is not None, looped
    summary = looped.summary
    print(f"scans while pip ran: {summary['runs']}, files they linked: {summary['linked']}")
    assert summary["runs"] >= 6 and summary["linked"] > 0, summary
    # A file pip removes or replaces mid-scan is skipped as changed, never an error.
    assert summary["errors"] == [], summary["errors"]

    final = scan([venv_root], store=store_dir)
    assert final.errors == (), final.errors
    assert record_problems(target) == []
    pip(target, "check")
    for venv in (a, b):
        assert snapshot_diff(others_before[venv.path.name], snapshot(venv.path)) == []
    assert leftovers(venv_root, store_dir) == []
    checked = verify([venv_root], store=store_dir)
    assert checked.ok, (checked.damaged, checked.errors)
    # target shares alpha 1.0 and beta with a again, like any venv scanned afresh.
    for relpath in ("alpha/core.py", "beta/engine.py"):
        assert os.lstat(target.file(relpath)).st_ino == os.lstat(a.file(relpath)).st_ino
