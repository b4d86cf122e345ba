"""Recovery from a killed scan (dedupe.scan.recovery, issue #12 items 2 and 3): the next
scan leaves every pyc that was valid before the kill valid again, and removes the temp
names a kill left in folders that no RECORD lists any more.

Each test copies venvs built once per module (a and b with alpha 1.0 and beta 1.0; the
sources of a, which become the store's objects, an hour older than b's, with their pycs
kept valid), kills a scan in a child process (faultkit) at a fault hook about one file
of b, and looks at what the kill left and what the next scan makes of it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultkit import copy_tree, leftovers, run_child
from helpers import (
    PathState,
    Venv,
    create_venvs,
    pip,
    pyc_freshness,
    run_cli,
    snapshot,
    snapshot_diff,
)

from dedupe import bytecode, scan, verify
from dedupe.journal import Entry, Journal
from dedupe.report.scan import render_text, to_json

UTIL = "alpha/util.py"


@dataclass(frozen=True)
class World:
    base: Path
    pristine: Path  # base/pristine/venvs/{a,b}
    expected: dict[str, PathState]
    fresh: dict[str, bool]  # pyc_freshness of the pristine venvs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> World:
    base = Path(os.path.realpath(tmp_path_factory.mktemp("recovery")))
    venvs = base / "pristine" / "venvs"
    a, _b = create_venvs(
        wheelhouse, venvs, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0", "beta==1.0"]
    )
    _age_sources(a, 3600)
    fresh = pyc_freshness(venvs)
    assert fresh and all(fresh.values()), fresh
    return World(base, base / "pristine", snapshot(venvs), fresh)


def _age_sources(venv: Venv, seconds: int) -> None:
    """Make every .py of the venv older, its timestamp pycs kept valid: linking b's
    sources to a's objects then gives them an mtime that none of b's pycs records."""
    for source in venv.site_packages.rglob("*.py"):
        st = source.stat()
        mtime = st.st_mtime_ns - seconds * 1_000_000_000
        os.utime(source, ns=(st.st_atime_ns, mtime))
        for pyc in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
            data = pyc.read_bytes()
            pyc.write_bytes(bytecode.with_source_stat(data, mtime, st.st_size))


@dataclass(frozen=True)
class Trial:
    root: Path  # trial/venvs
    store: Path

    def venv(self, name: str) -> Venv:
        return Venv(self.root / name)

    def journal(self) -> dict[str, bytes]:
        folder = self.store / "journal"
        if not folder.exists():
            return {}
        return {p.name: p.read_bytes() for p in folder.iterdir()}


_numbers = iter(range(1_000_000))


def trial_of(world: World, *, scanned: bool = False) -> Trial:
    """A copy of the pristine venvs; with scanned, scanned into its store already."""
    folder = world.base / f"trial-{next(_numbers)}"
    copy_tree(world.pristine, folder)
    trial = Trial(folder / "venvs", folder / "store")
    if scanned:
        assert scan([trial.root], store=trial.store, jobs=1).errors == ()
    return trial


def killed(
    world: World, stage: str, *, file: str = UTIL, op: str = "scan", trial: Trial | None = None
) -> Trial:
    """trial (a copy of the pristine venvs), after op in a child killed at the first
    fault hook of stage about b's file (relative to site-packages)."""
    t = trial or trial_of(world)
    target = str(t.venv("b").file(file))
    config = {
        "op": op,
        "root": str(t.root),
        "store": str(t.store),
        "venvs": [str(t.venv("b").path)],
        "kill": {"mode": "hook", "stage": stage, "path": target, "n": 1},
    }
    run = run_child(config, pycache=world.base / "pycache")
    assert run.killed, f"{op} was not killed at {stage} of {target}: {run}"
    assert len(t.journal()) == 1, t.journal()  # the batch under way when it died
    return t


def pycs_of(venv: Venv, source: str) -> list[Path]:
    path = venv.file(source)
    return sorted((path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"))


def stale_since(world: World, trial: Trial) -> list[str]:
    """The pycs valid in the pristine venvs that are stale now."""
    now = pyc_freshness(trial.root)
    return sorted(p for p, ok in world.fresh.items() if ok and not now.get(p, True))


def test_a_kill_between_linking_a_source_and_its_pycs_leaves_no_pyc_stale(world: World) -> None:
    trial = killed(world, "renamed")
    b = trial.venv("b")
    util_pycs = [str(p.relative_to(trial.root)) for p in pycs_of(b, UTIL)]
    assert util_pycs and stale_since(world, trial) == util_pycs  # what the kill did
    before = {p: os.lstat(trial.root / p).st_ino for p in util_pycs}

    result = scan([trial.root], store=trial.store, jobs=1)
    assert result.errors == (), result.errors
    assert result.recovery.entries == 1 and result.recovery.pycs_healed == len(util_pycs)
    assert stale_since(world, trial) == []
    assert snapshot_diff(world.expected, snapshot(trial.root)) == []
    for rel, ino in before.items():
        st = os.lstat(trial.root / rel)
        # Healed, then shared by the same scan with a's pyc of the same source object.
        assert st.st_ino != ino and st.st_nlink > 1, rel
        twin = trial.root / rel.replace("b/", "a/", 1)
        assert os.lstat(twin).st_ino == st.st_ino
    assert trial.journal() == {} and leftovers(trial.root, trial.store) == []
    assert json.loads(to_json(result))["recovery"]["pycs_healed"] == len(util_pycs)
    assert f"journal: healed {len(util_pycs)} pyc(s)" in render_text(result)
    rerun = scan([trial.root], store=trial.store, jobs=1)
    assert (rerun.recovery.entries, rerun.files_linked, rerun.pyc.linked) == (0, 0, 0)
    assert verify([trial.root], store=trial.store).ok


def test_pycs_kept_private_are_healed_too(world: World) -> None:
    """--no-share-pyc: the killed run would have given b's pyc a private copy; so does
    the next scan, which then leaves it private."""
    trial = killed(world, "renamed")
    result = scan([trial.root], store=trial.store, jobs=1, share_pyc=False)
    assert result.errors == () and result.recovery.pycs_healed >= 1
    assert stale_since(world, trial) == []
    for pyc in pycs_of(trial.venv("b"), UTIL):
        assert os.lstat(pyc).st_nlink == 1


def test_temp_names_in_a_folder_no_record_lists_are_removed(world: World) -> None:
    """Killed with a temp link beside b's util.py, then alpha uninstalled from b: no
    RECORD names alpha/ any more, and pip leaves the folder, which holds the temp name."""
    trial = killed(world, "linked")
    b = trial.venv("b")
    pip(b, "uninstall", "-y", "-q", "alpha")
    (temp,) = leftovers(trial.root)
    assert temp.parent == b.file("alpha") and stat.S_ISREG(os.lstat(temp).st_mode)
    records = "".join(p.read_text() for p in b.site_packages.glob("*.dist-info/RECORD"))
    assert "alpha/" not in records

    done = run_cli("scan", "--store", str(trial.store), "-j", "1", str(trial.root))
    assert done.returncode == 0, done
    assert "journal: healed 0 pyc(s), removed 1 temp file(s) from a killed run" in done.stdout
    assert leftovers(trial.root, trial.store) == [] and trial.journal() == {}
    assert list(b.file("alpha").iterdir()) == []  # pip's folder, as pip left it but ours


def test_a_killed_detach_leaves_its_folders_in_the_journal_too(world: World) -> None:
    """detach of b killed with the private copy of util.py under a temp name beside it;
    alpha uninstalled; the next scan removes the copy."""
    trial = killed(world, "copied", op="detach", trial=trial_of(world, scanned=True))
    b = trial.venv("b")
    pip(b, "uninstall", "-y", "-q", "alpha")
    (temp,) = leftovers(trial.root)
    assert temp.parent == b.file("alpha")
    result = scan([trial.root], store=trial.store, jobs=1)
    assert result.errors == () and result.recovery.temp_files_removed == 1
    assert leftovers(trial.root, trial.store) == [] and trial.journal() == {}
    assert stale_since(world, trial) == []


def test_the_entry_of_a_venv_that_is_gone_is_dropped(world: World) -> None:
    trial = killed(world, "renamed")
    shutil.rmtree(trial.venv("b").path)
    result = scan([trial.root], store=trial.store, jobs=1)
    assert result.errors == ()
    assert (result.recovery.entries, result.recovery.entries_dropped) == (1, 1)
    assert result.recovery.pycs_healed == result.recovery.temp_files_removed == 0
    assert trial.journal() == {}
    assert "dropped 1 entr(ies) of venvs that are gone" in render_text(result)


def test_a_venv_made_anew_at_the_path_gets_nothing_of_the_entry(
    world: World, wheelhouse: Path
) -> None:
    """Its root may even have the old inode number (a freed inode is soon reused), so
    the entry may be taken as its own: none of its new files is the store object the
    entry names, so nothing is healed, and every pyc stays as pip wrote it."""
    trial = killed(world, "renamed")
    shutil.rmtree(trial.venv("b").path)
    create_venvs(wheelhouse, trial.root, b=["alpha==1.0"])
    pristine = snapshot(trial.venv("b").path)
    result = scan([trial.root], store=trial.store, jobs=1)
    assert result.errors == () and result.recovery.entries == 1
    assert result.recovery.pycs_healed == 0 and trial.journal() == {}
    assert snapshot_diff(pristine, snapshot(trial.venv("b").path)) == []
    assert all(pyc_freshness(trial.venv("b").path).values())


def test_the_entry_of_a_venv_outside_the_roots_waits_for_a_scan_of_it(world: World) -> None:
    trial = killed(world, "renamed")
    entry = trial.journal()
    stale = stale_since(world, trial)
    result = scan([trial.root / "a"], store=trial.store, jobs=1)
    assert result.errors == ()
    assert (result.recovery.entries, result.recovery.entries_kept) == (1, 1)
    assert trial.journal() == entry and stale_since(world, trial) == stale
    assert "kept for venvs outside these roots" in render_text(result)
    later = scan([trial.root / "b"], store=trial.store, jobs=1)
    assert later.recovery.pycs_healed == len(stale) and stale_since(world, trial) == []
    assert trial.journal() == {}


def test_the_entry_of_a_package_tree_outside_the_roots_is_kept(world: World) -> None:
    # A --target folder has no pyvenv.cfg: its root's inode is what says it is still there.
    trial = killed(world, "linked")
    pool = trial.root.parent / "pool"
    pool.mkdir()
    st = os.lstat(pool)
    entry = Entry(root=str(pool), device=st.st_dev, ino=st.st_ino, folders=("alpha",))
    name = Journal(str(trial.store)).write(entry)
    result = scan([trial.root], store=trial.store, jobs=1)
    assert result.errors == ()
    assert (result.recovery.entries, result.recovery.entries_kept) == (2, 1)
    assert result.recovery.entries_dropped == 0
    assert set(trial.journal()) == {name}


def test_a_dry_run_changes_nothing_and_says_what_recovery_would_do(world: World) -> None:
    trial = killed(world, "linked")
    venvs_before, store_before = snapshot(trial.root), snapshot(trial.store)
    inodes_before = {p: os.lstat(p).st_ino for p in trial.root.rglob("*")}
    journal = trial.journal()
    result = scan([trial.root], store=trial.store, jobs=1, dry_run=True)
    assert result.errors == ()
    assert snapshot_diff(venvs_before, snapshot(trial.root)) == []
    assert snapshot_diff(store_before, snapshot(trial.store)) == []
    assert {p: os.lstat(p).st_ino for p in trial.root.rglob("*")} == inodes_before
    assert trial.journal() == journal
    assert (result.recovery.entries, result.recovery.temp_files_removed) == (1, 1)
    assert "would remove 1 temp file(s)" in render_text(result)


def test_the_json_of_a_scan_has_its_recovery(world: World) -> None:
    trial = killed(world, "linked")
    done = run_cli("scan", "--json", "--store", str(trial.store), "-j", "1", str(trial.root))
    assert done.returncode == 0, done
    assert done.json()["recovery"] == {
        "entries": 1,
        "pycs_healed": 0,
        "temp_files_removed": 1,
        "entries_dropped": 0,
        "entries_kept": 0,
    }


def test_a_damaged_entry_is_dropped_with_a_warning(world: World) -> None:
    trial = killed(world, "linked")
    (name,) = trial.journal()
    (trial.store / "journal" / name).write_bytes(b'{"format": 1, "root": "../x"}')
    result = scan([trial.root], store=trial.store, jobs=1)
    assert result.errors == () and trial.journal() == {}
    (warning,) = [w for w in result.warnings if "journal" in w.error]
    assert "not usable" in warning.error and name in warning.path
    # Its temp name is then a leftover in a listed folder, which pass 1 removes (with
    # the store's: the trash of the killed run).
    assert result.leftovers_removed > 1 and leftovers(trial.root, trial.store) == []
