"""Crash safety (DESIGN invariant 6, issue #3): ``kill -9`` at many instants of a real
scan, detach and gc.

Each trial copies a tree built once per module (``cp -a``), runs the operation in a child
process (see faultkit.py) and SIGKILLs it: at the Nth call of
``dedupe.link.steps.fault_hook`` (of any stage, or of a chosen one: "linked" and
"checked" lie between the temp link and the rename), before the Nth line executed in
the package ``dedupe/link/`` (every instant between two of its system calls; a scan
runs lines of each of its modules, and one trial at least strikes in each), at the Nth
call of a ``dedupe.link`` function, or from the parent after a random delay. The making
of a new store is swept instead: one trial per line run in ``dedupe/store/`` from the
moment the store folder exists until the scan takes the lock. Afterwards:

* every path under the root has its exact content (snapshot; a temp name may remain, as
  a regular file), and ``dedupe.maintenance.verify`` finds every store object intact;
* the next run completes without errors, leaves no ``.venv-dedupe-tmp-*`` anywhere under
  the root or the store, shares exactly what a run that was never killed shares (pycs
  aside: see below), a rerun after it links nothing, and verify passes again.

Pycs are compared by code (helpers.snapshot), validity and sharing: a kill between
linking a source and dealing with its pycs leaves those pycs stale for the new inode
(Python would recompile them on every import), and the next scan must make every pyc
that was valid before valid again, from the journal the killed run left (issue #12).

N and the delays are drawn from ``random.Random(SEED)``; set VENV_DEDUPE_FAULT_SEED to
replay other instants. The seed is printed, and every trial's instant is printed and
named in the assertion messages. Trials run WORKERS at a time, each in its own copy.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from faultkit import copy_tree, leftovers, run_child, sharing, without_leftovers
from helpers import (
    REPO_ROOT,
    TEMP_PREFIX,
    PathState,
    Venv,
    create_venvs,
    pyc_freshness,
    snapshot,
    snapshot_diff,
    unused_objects,
)

from dedupe import detach, gc, scan, verify
from dedupe.store import open_store

SEED = int(os.environ.get("VENV_DEDUPE_FAULT_SEED", "20240611"))
WORKERS = max(1, min(2, os.cpu_count() or 1))

# Random trials per test. With the store-creation sweep (one trial per line instant, about
# 50) they keep this module near 35 s on 2 cores.
SCAN_HOOK_TRIALS = 20  # at the Nth fault_hook call: half of any stage, half of one stage
SCAN_LINE_TRIALS = 14  # before the Nth line run in dedupe/link/ (one in each module)
SCAN_DELAY_TRIALS = 12  # by the parent, after a random delay
DETACH_TRIALS = 12
GC_TRIALS = 6
TRIALS = SCAN_HOOK_TRIALS + SCAN_LINE_TRIALS + SCAN_DELAY_TRIALS + DETACH_TRIALS + GC_TRIALS

STAGES = ("adopted", "linked", "checked", "renamed")

# The modules of the executor, as faultkit's line kills name them. Its __init__ runs only
# when it is imported, before any kill is armed.
LINK_LINES = {"mode": "line", "files": ["link/*.py"]}
LINK_MODULES = {
    str(path.relative_to(REPO_ROOT / "dedupe"))
    for path in (REPO_ROOT / "dedupe" / "link").glob("*.py")
    # reflinks runs only on a copy-on-write store: test_reflinks kills it on one; sharing
    # only in a clone: test_clone kills it there.
    if path.name not in ("__init__.py", "reflinks.py", "sharing.py")
}


@dataclass
class World:
    """Trees built once: pristine venvs, the same scanned into a store, and a scanned
    tree whose venvs a and b are gone (their objects unused, for gc)."""

    base: Path
    pristine: Path  # base/pristine/venvs
    scanned: Path  # base/scanned/{venvs,store}
    gc_base: Path  # base/gc/{venvs,store}
    expected: dict[str, PathState]  # snapshot of the pristine venvs
    expected_gc: dict[str, PathState]
    shared: set[frozenset[str]]  # what a scan that was never killed shares (no pycs)
    shared_pycs: set[frozenset[str]]  # and with pycs
    valid_pycs: dict[str, bool]  # which pycs of the pristine venvs are valid
    numbers: itertools.count[int] = field(default_factory=itertools.count)

    def fresh(self, source: Path) -> Path:
        """A new copy of source (a folder holding venvs/ and perhaps store/)."""
        trial = self.base / f"trial-{next(self.numbers)}"
        copy_tree(source, trial)
        return trial


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> World:
    base = tmp_path_factory.mktemp("faults")
    pristine = base / "pristine"
    a, _b, _c = create_venvs(
        wheelhouse,
        pristine / "venvs",
        a=["alpha==1.0", "beta==1.0"],
        b=["alpha==1.0"],
        c=["alpha==2.0", "beta==1.0"],
    )
    # So that a scan writes a pyc object too (the executor's copies): a's util.py, which
    # becomes the source object, gets an mtime that no venv's pyc records, and no pyc.
    util = a.file("alpha/util.py")
    os.utime(util, ns=(util.stat().st_atime_ns, util.stat().st_mtime_ns + 5_000_000_000))
    for pyc in (util.parent / "__pycache__").glob("util.*.pyc"):
        pyc.unlink()
    scanned = base / "scanned"
    copy_tree(pristine, scanned)
    (b_pyc,) = Venv(scanned / "venvs" / "b").file("alpha/__pycache__").glob("util.*.pyc")
    b_pyc_ino = b_pyc.stat().st_ino
    result = scan([scanned / "venvs"], store=scanned / "store")
    assert result.errors == () and result.files_linked > 10, result
    # b's pyc was not valid for the object: it is now a name of a pyc object written anew.
    assert b_pyc.stat().st_ino != b_pyc_ino and b_pyc.stat().st_nlink > 1
    gc_base = base / "gc"
    copy_tree(scanned, gc_base)
    shutil.rmtree(gc_base / "venvs" / "a")
    shutil.rmtree(gc_base / "venvs" / "b")
    print(f"fault trials: seed {SEED} (VENV_DEDUPE_FAULT_SEED), {TRIALS} random trials")
    return World(
        base=base,
        pristine=pristine,
        scanned=scanned,
        gc_base=gc_base,
        expected=snapshot(pristine / "venvs"),
        expected_gc=snapshot(gc_base / "venvs"),
        shared=sharing(scanned / "venvs"),
        shared_pycs=sharing(scanned / "venvs", pycs=True),
        valid_pycs=pyc_freshness(pristine / "venvs"),
    )


@dataclass(frozen=True)
class Plan:
    what: str  # the instant, as the messages name it
    kill: dict[str, Any]  # faultkit's kill config; {} for none
    delay: float | None = None  # the parent kills after this many seconds
    struck: list[str] = field(default_factory=list)  # where a line kill struck

    def __str__(self) -> str:
        return f"{self.what} ({self.struck[0]})" if self.struck else self.what


def run_plans(plans: list[Plan], trial: Callable[[Plan], bool]) -> int:
    """Run every plan, WORKERS at a time; fail naming every instant that failed. The
    number of children that were killed."""
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(trial, plan) for plan in plans]
    kills, failures = 0, []
    for plan, future in zip(plans, futures, strict=True):
        try:
            kills += future.result()
        except Exception as exc:  # every failing instant is named, not only the first
            failures.append(f"{plan}: {type(exc).__name__}: {exc}")
    assert failures == [], "\n".join(failures)
    return kills


def child_killed(world: World, config: dict[str, Any], plan: Plan) -> bool:
    run = run_child(
        {**config, "kill": plan.kill}, kill_after=plan.delay, pycache=world.base / "pycache"
    )
    if plan.delay is None:
        assert run.killed, f"the child was not killed (exit {run.returncode}): {run}"
    if run.where:
        plan.struck.append(run.where)
    print(f"  seed {SEED}: {plan}: {'killed' if run.killed else 'finished first'}")
    return run.killed


def child_config(op: str, trial: Path, **extra: Any) -> dict[str, Any]:
    return {
        "op": op,
        "root": str(trial / "venvs"),
        "store": str(trial / "store"),
        "venvs": [str(trial / "venvs" / "a")],
        **extra,
    }


def counted(world: World, source: Path, op: str, **extra: Any) -> dict[str, Any]:
    """Run the operation once, unkilled, on a copy of source: what the child counted."""
    trial = world.fresh(source)
    config = child_config(op, trial, **extra)
    config["kill"] = {**config.get("kill", {}), "n": 0}
    run = run_child(config, pycache=world.base / "pycache")
    assert run.returncode == 0 and run.summary is not None, run
    assert run.summary["errors"] == [], run.summary
    shutil.rmtree(trial)
    return run.summary


# --- checks -------------------------------------------------------------------------------


def check_killed(trial: Path, expected: dict[str, PathState], *, store: bool = True) -> None:
    """Right after the kill: exact content everywhere; temp names only as regular files;
    every store object intact."""
    venvs = trial / "venvs"
    for path in leftovers(venvs, trial / "store"):
        assert stat.S_ISREG(os.lstat(path).st_mode), f"a temp name that is no file: {path}"
    assert snapshot_diff(expected, without_leftovers(snapshot(venvs))) == []
    if store:
        checked = verify([venvs], store=trial / "store")
        assert checked.ok, f"after the kill: {checked.damaged} {checked.errors}"


def check_recovered(world: World, trial: Path) -> None:
    """The next scan completes, removes every temp name and shares what an unkilled run
    shares; a rerun links nothing; verify passes."""
    venvs, store = trial / "venvs", trial / "store"
    # jobs=1 in every trial: trials run in threads of this process, and a scan that forks
    # a worker while another trial's gc or verify holds its store's lock lends the child a
    # copy of that lock, held until the child closes it (the next trial's op then fails).
    # A trial starting its child process lends it the same way until the child's exec:
    # hence a lock timeout, where the library's default for scan is none.
    result = scan([venvs], store=store, jobs=1, lock_timeout=10)
    assert result.errors == (), f"the next scan: {result.errors}"
    assert snapshot_diff(world.expected, snapshot(venvs)) == []
    assert leftovers(venvs, store) == []
    assert sharing(venvs) == world.shared
    fresh = pyc_freshness(venvs)
    assert [p for p, ok in world.valid_pycs.items() if ok and not fresh[p]] == []
    assert sharing(venvs, pycs=True) == world.shared_pycs
    assert not (store / "journal").exists() or list((store / "journal").iterdir()) == []
    rerun = scan([venvs], store=store, jobs=1, lock_timeout=10)
    assert (rerun.errors, rerun.files_linked, rerun.files_stored) == ((), 0, 0), rerun
    checked = verify([venvs], store=store)
    assert checked.ok, f"after the next scan: {checked.damaged} {checked.errors}"


# --- scan ---------------------------------------------------------------------------------


def scan_trial(world: World, *, existing_store: bool = False) -> Callable[[Plan], bool]:
    def trial_of(plan: Plan) -> bool:
        trial = world.fresh(world.pristine)
        if existing_store:
            assert open_store(str(trial / "store"), create=True) is not None
        killed = child_killed(world, child_config("scan", trial), plan)
        check_killed(trial, world.expected, store=(trial / "store" / "FORMAT").exists())
        check_recovered(world, trial)
        shutil.rmtree(trial)
        return killed

    return trial_of


def test_kill_at_random_fault_hook_calls_of_a_scan(world: World) -> None:
    hooks: dict[str, int] = counted(world, world.pristine, "scan", kill={"mode": "hook"})["hooks"]
    assert set(STAGES) <= set(hooks), hooks
    print(f"seed {SEED}: fault_hook calls of one scan: {hooks}")
    rng = random.Random(f"{SEED}-hook")
    plans = []
    for i in range(SCAN_HOOK_TRIALS):
        stage = None if i % 2 == 0 else STAGES[(i // 2) % len(STAGES)]
        n = rng.randint(1, sum(hooks.values()) if stage is None else hooks[stage])
        plans.append(
            Plan(
                f"scan killed at fault_hook call {n} of {stage or 'any stage'}",
                {"mode": "hook", "stage": stage, "n": n},
            )
        )
    assert run_plans(plans, scan_trial(world)) == SCAN_HOOK_TRIALS


def test_kill_at_random_lines_of_the_link_package_during_a_scan(world: World) -> None:
    """Before the Nth line run in dedupe/link/: in each of its modules one instant drawn
    from the lines a scan runs there, and the other trials drawn from all of them."""
    summary = counted(world, world.pristine, "scan", kill=LINK_LINES)
    lines, by_module = summary["seen"], summary["lines"]
    print(f"seed {SEED}: lines of dedupe/link/ run in one scan: {lines} {by_module}")
    assert set(by_module) == LINK_MODULES, by_module  # every module of the executor runs
    assert lines > 100, lines
    rng = random.Random(f"{SEED}-line")
    plans = [
        Plan(
            f"scan killed before line {n} of {by_module[module]} run in dedupe/{module}",
            {"mode": "line", "files": [module], "n": n},
        )
        for module in sorted(by_module)
        for n in [rng.randint(1, by_module[module])]
    ]
    plans += [
        Plan(f"scan killed before line {n} of {lines} run in dedupe/link/", {**LINK_LINES, "n": n})
        for n in (rng.randint(1, lines) for _ in range(SCAN_LINE_TRIALS - len(plans)))
    ]
    assert len(plans) == SCAN_LINE_TRIALS
    assert run_plans(plans, scan_trial(world)) == SCAN_LINE_TRIALS


def test_kill_after_a_random_delay_of_a_scan(world: World) -> None:
    """The parent kills the child at any moment between "ready" and 1.2 times an unkilled
    scan's duration. The store exists already: making a new one is swept below."""
    duration = counted(world, world.pristine, "scan")["elapsed"]
    rng = random.Random(f"{SEED}-delay")
    plans = [
        Plan(f"scan killed {delay * 1000:.1f} ms after ready", {}, delay)
        for delay in (rng.uniform(0, duration * 1.2) for _ in range(SCAN_DELAY_TRIALS))
    ]
    kills = run_plans(plans, scan_trial(world, existing_store=True))
    print(f"seed {SEED}: {kills} of {SCAN_DELAY_TRIALS} delayed kills landed in the scan")
    assert kills >= SCAN_DELAY_TRIALS // 4, kills


# Every line of the dedupe/store/ package that a first scan runs before it takes the
# store's lock: the making of the store.
STORE_CREATION = {
    "mode": "line",
    "files": [f"store/{m}.py" for m in ("names", "layout", "lock", "opening", "placement")],
    "until": "lock",
    # Before the store folder exists a kill leaves nothing behind: those instants are
    # the same as a kill before the scan.
    "when": {"exists": "{store}", "missing": "{store}/lock"},
}


def test_kill_while_the_store_is_made(world: World) -> None:
    """Every line instant of dedupe/store/ in a first scan from the moment the store
    folder exists until the scan takes its lock."""
    lines = counted(world, world.pristine, "scan", kill=STORE_CREATION)["seen"]
    assert 5 < lines < 100, lines

    def trial_of(plan: Plan) -> bool:
        trial = world.fresh(world.pristine)
        killed = child_killed(world, child_config("scan", trial), plan)
        check_killed(trial, world.expected, store=False)
        check_recovered(world, trial)
        shutil.rmtree(trial)
        return killed

    plans = [
        Plan(
            f"scan killed before line {n} of {lines} run in store creation",
            {**STORE_CREATION, "n": n},
        )
        for n in range(1, lines + 1)
    ]
    run_plans(plans, trial_of)


# --- detach ---------------------------------------------------------------------------------


def test_kill_at_random_instants_of_detach(world: World) -> None:
    """detach of venv a (every file it shares) killed at its Nth "copied" hook (the private
    copy written, not yet swapped in), before or after its Nth make_private, before the
    Nth line it runs in dedupe/link/, or after a delay; then detach again (all of a
    private), then scan."""
    extra = {"count_calls": ["make_private"]}
    summary = counted(world, world.scanned, "detach", **extra)
    copies, calls = summary["hooks"].get("copied", 0), summary["calls"]["make_private"]
    assert copies == calls > 10, summary
    lines = counted(world, world.scanned, "detach", kill=LINK_LINES)["seen"]
    assert lines > calls, lines
    rng = random.Random(f"{SEED}-detach")
    plans = []
    for i in range(DETACH_TRIALS):
        if i % 4 == 0:
            n = rng.randint(1, copies)
            plans.append(
                Plan(f"detach killed at copy {n}", {"mode": "hook", "stage": "copied", "n": n})
            )
        elif i % 4 == 1:
            n, after = rng.randint(1, calls), rng.random() < 0.5
            kill = {"mode": "call", "function": "make_private", "n": n, "after": after}
            plans.append(Plan(f"detach killed {'after' if after else 'before'} file {n}", kill))
        elif i % 4 == 2:
            n = rng.randint(1, lines)
            what = f"detach killed before line {n} of {lines} run in dedupe/link/"
            plans.append(Plan(what, {**LINK_LINES, "n": n}))
        else:
            delay = rng.uniform(0, summary["elapsed"] * 1.2)
            plans.append(Plan(f"detach killed {delay * 1000:.1f} ms after ready", {}, delay))

    def trial_of(plan: Plan) -> bool:
        trial = world.fresh(world.scanned)
        venvs, store = trial / "venvs", trial / "store"
        killed = child_killed(world, child_config("detach", trial, **extra), plan)
        check_killed(trial, world.expected)
        done = detach([venvs / "a"], store=store)
        assert done.errors == (), f"the next detach: {done.errors}"
        linked = [
            path
            for path in (venvs / "a").rglob("*")
            if path.is_file()
            and not path.is_symlink()
            and not path.name.startswith(TEMP_PREFIX)
            and os.lstat(path).st_nlink > 1
        ]
        assert linked == [], f"still shared after the next detach: {linked}"
        check_killed(trial, world.expected)
        check_recovered(world, trial)
        shutil.rmtree(trial)
        return killed

    run_plans(plans, trial_of)


# --- gc -------------------------------------------------------------------------------------


def test_kill_at_random_instants_of_gc(world: World) -> None:
    """gc of a store whose venvs a and b are gone, killed before or after its Nth object
    or folder removal, or after a delay; then gc again, then scan."""
    extra = {"count_calls": ["remove_unused", "remove_empty_folder"]}
    summary = counted(world, world.gc_base, "gc", **extra)
    calls: dict[str, int] = summary["calls"]
    assert summary["removed"] == calls["remove_unused"] > 5, summary
    rng = random.Random(f"{SEED}-gc")
    plans = []
    for i in range(GC_TRIALS):
        if i % 3 == 2:
            delay = rng.uniform(0, summary["elapsed"] * 1.2)
            plans.append(Plan(f"gc killed {delay * 1000:.1f} ms after ready", {}, delay))
            continue
        function = ("remove_unused", "remove_empty_folder")[i % 3]
        n, after = rng.randint(1, calls[function]), rng.random() < 0.5
        kill = {"mode": "call", "function": function, "n": n, "after": after}
        plans.append(Plan(f"gc killed {'after' if after else 'before'} {function} {n}", kill))

    def trial_of(plan: Plan) -> bool:
        trial = world.fresh(world.gc_base)
        venvs, store = trial / "venvs", trial / "store"
        killed = child_killed(world, child_config("gc", trial, **extra), plan)
        check_killed(trial, world.expected_gc)
        done = gc(store)
        assert done.errors == (), f"the next gc: {done.errors}"
        assert unused_objects(store) == {}
        for tree in ("objects", "pyc"):
            for folder, dirs, files in os.walk(store / tree):
                assert dirs or files or Path(folder) == store / tree, f"left empty: {folder}"
        rescan = scan([venvs], store=store, jobs=1, lock_timeout=10)  # see check_recovered
        assert (rescan.errors, rescan.files_linked, rescan.files_stored) == ((), 0, 0), rescan
        assert snapshot_diff(world.expected_gc, snapshot(venvs)) == []
        assert leftovers(venvs, store) == []
        checked = verify([venvs], store=store)
        assert checked.ok, f"{checked.damaged} {checked.errors}"
        shutil.rmtree(trial)
        return killed

    run_plans(plans, trial_of)
