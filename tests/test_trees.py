"""Scanning package trees that are no venvs (a --target folder, a --prefix tree, the user
site) like venvs: their files proven against RECORD and shared, their kind reported.

The trees are real: `pip install --no-index --target DIR` and `--prefix DIR` of the
wheelhouse's alpha 1.0 beside a venv with the same alpha, and a user site (a --prefix
install into a temp HOME's .local, the layout `pip install --user` makes), scanned
through the CLI as the user of that HOME, never the real one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    ALPHA_FILES,
    CliRun,
    PathState,
    create_venv,
    pip_install_tree,
    pyc_freshness,
    run_cli,
    snapshot,
    snapshot_diff,
)

PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
# alpha 1.0's files that every tree holds the same bytes of and that are worth sharing.
SHARED = ALPHA_FILES


@dataclass(frozen=True)
class Scanned:
    root: Path
    site: dict[str, Path]  # tree name -> its site-packages
    user_root: Path  # the user site, given as a root
    decoy: Path  # where the --target RECORD's ../../bin/alpha-cli leads: outside the tree
    before: dict[str, PathState]
    decoy_before: os.stat_result
    dry: dict[str, Any]
    real: dict[str, Any]
    text: CliRun  # the rerun, as text
    status: dict[str, Any]  # venv-dedupe status over the same roots, after the scans
    after: dict[str, PathState]
    fresh_after: dict[str, bool]

    def report(self, result: dict[str, Any], name: str) -> dict[str, Any]:
        (found,) = (v for v in result["venvs"] if Path(v["path"]).name == name)
        return found


def _scan(*args: str, home: Path | None = None) -> CliRun:
    """A scan that exits 0; with home, as the user whose HOME and user base are there."""
    env = None if home is None else {"HOME": str(home), "PYTHONUSERBASE": str(home / ".local")}
    run = run_cli("scan", "-j", "1", *args, env=env)
    assert run.returncode == 0, run
    return run


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Scanned:
    base = tmp_path_factory.mktemp("trees")
    root, store, home = base / "root", base / "store", base / "home"
    venv = create_venv(root / "a", wheelhouse, "alpha==1.0")
    site = {
        "a": venv.site_packages,
        "pool": pip_install_tree(wheelhouse, "--target", root / "pool", "alpha==1.0"),
        "pfx": pip_install_tree(wheelhouse, "--prefix", root / "pfx", "alpha==1.0"),
        ".local": pip_install_tree(wheelhouse, "--prefix", home / ".local", "alpha==1.0"),
    }
    # The --target RECORD names its script ../../bin/alpha-cli, which leads out of the
    # tree: a file there with the script's bytes must be left alone.
    decoy = root.parent / "bin" / "alpha-cli"
    decoy.parent.mkdir()
    shutil.copy2(root / "pool" / "bin" / "alpha-cli", decoy)
    before = snapshot(base)
    decoy_before = os.lstat(decoy)
    user_root = site[".local"]
    roots = (str(root), str(user_root))
    dry = _scan("--dry-run", "--json", "--store", str(store), *roots, home=home).json()
    real = _scan("--json", "--store", str(store), *roots, home=home).json()
    text = _scan("--store", str(store), *roots, home=home)
    status = run_cli("status", "--json", "--store", str(store), *roots)
    assert status.returncode == 0, status
    return Scanned(
        root=root,
        site=site,
        user_root=user_root,
        decoy=decoy,
        before=before,
        decoy_before=decoy_before,
        dry=dry,
        real=real,
        text=text,
        status=status.json(),
        after=snapshot(base),
        fresh_after=pyc_freshness(base),
    )


def test_each_tree_is_reported_with_its_kind_and_version(scanned: Scanned) -> None:
    for result in (scanned.dry, scanned.real):
        found = {Path(v["path"]).name: (v["kind"], v["python"]) for v in result["venvs"]}
        assert found == {
            "a": ("venv", VERSION),
            "pool": ("target", None),  # py3-none-any, and no pythonX.Y in its path
            "pfx": ("prefix", VERSION),
            ".local": ("user-site", VERSION),
        }


@pytest.mark.parametrize("relpath", SHARED)
def test_the_same_file_of_every_tree_is_one_inode(scanned: Scanned, relpath: str) -> None:
    sts = [os.lstat(site / relpath) for site in scanned.site.values()]
    assert len({(st.st_dev, st.st_ino) for st in sts}) == 1
    assert sts[0].st_nlink == len(scanned.site) + 1  # every tree's name and the store's


def test_the_scan_changes_nothing_but_sharing(scanned: Scanned) -> None:
    after = {
        path: state for path, state in scanned.after.items() if path.split(os.sep)[0] != "store"
    }
    assert snapshot_diff(scanned.before, after) == []
    assert all(scanned.fresh_after.values()), scanned.fresh_after


def test_a_record_path_that_leaves_the_tree_is_not_followed(scanned: Scanned) -> None:
    pool = scanned.report(scanned.real, "pool")
    assert pool["skipped"]["outside-venv"] == 1
    st = os.lstat(scanned.decoy)
    assert (st.st_ino, st.st_nlink) == (scanned.decoy_before.st_ino, 1)
    # A prefix's ../../../bin/alpha-cli is its own script: per-install, inside the tree.
    for name in ("pfx", ".local"):
        assert "outside-venv" not in scanned.report(scanned.real, name)["skipped"]
        assert os.lstat(scanned.site[name].parents[2] / "bin" / "alpha-cli").st_nlink == 1


def test_pycs_of_a_tree_are_kept_valid_and_not_shared(scanned: Scanned) -> None:
    for name in ("pool", "pfx", ".local"):
        pyc = scanned.report(scanned.real, name)["pyc"]
        assert pyc["not_shared"] == {"pyc-build-unknown": 4}, name
        assert pyc["linked"] == pyc["stored"] == 0, name
        for path in (scanned.site[name] / "alpha" / "__pycache__").iterdir():
            assert os.lstat(path).st_nlink == 1, path


def test_the_dry_run_foresees_the_real_run(scanned: Scanned) -> None:
    for figure in ("files_linked", "files_stored", "bytes_reclaimed"):
        assert scanned.dry[figure] == scanned.real[figure], figure
    assert scanned.real["files_linked"] + scanned.real["files_stored"] == 4 * len(SHARED)


def test_every_tree_still_imports(scanned: Scanned) -> None:
    for name, site in scanned.site.items():
        done = subprocess.run(
            [sys.executable, "-c", "import alpha.core, alpha.util; print(alpha.core.answer())"],
            env={**os.environ, "PYTHONPATH": str(site)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert (done.returncode, done.stdout) == (0, "42\n"), (name, done.stderr)


def test_the_text_report_names_the_kinds(scanned: Scanned) -> None:
    lines = scanned.text.stdout.splitlines()
    assert lines[0].startswith(
        "venv-dedupe scan: 1 venv(s) and 3 package tree(s) "
        "(1 --prefix tree, 1 --target folder, 1 user site) under "
    ), lines[0]
    header = next(line for line in lines if line.lstrip().startswith("venv "))
    assert header.endswith("  kind")
    rows = {line.split()[0]: line.split()[-1] for line in lines if line.startswith("  ")}
    kinds = {name: rows[f"root{os.sep}{name}"] for name in ("a", "pool", "pfx")}
    assert kinds == {"a": "venv", "pool": "target", "pfx": "prefix"}
    assert rows[f"home{os.sep}.local"] == "user-site"


def test_a_rerun_takes_every_tree_from_its_memo(scanned: Scanned) -> None:
    assert "4 of them unchanged since the last scan" in scanned.text.stdout
    assert f"files: {scanned.real['files_scanned']:,} scanned" in scanned.text.stdout


def test_a_root_with_nothing_to_scan_says_so(tmp_path: Path, scanned: Scanned) -> None:
    empty = tmp_path / "nothing"
    (empty / "sub").mkdir(parents=True)
    store = str(tmp_path / "store")
    run = _scan("--dry-run", "--store", store, str(empty))
    assert f"note: no venv or package tree found under {empty}" in run.stdout.splitlines()
    data = _scan("--dry-run", "--json", "--store", store, str(empty)).json()
    assert data["notes"] == [f"no venv or package tree found under {empty}"]
    assert data["venvs"] == []
    quiet = _scan("--dry-run", "--quiet", "--store", store, str(empty))
    assert quiet.stderr.strip() == f"note: no venv or package tree found under {empty}"


def test_the_user_site_is_scanned_by_default(
    tmp_path: Path, scanned: Scanned, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PYTHONUSERBASE", "XDG_DATA_HOME", "XDG_CACHE_HOME", "WORKON_HOME",
                 "POETRY_VIRTUALENVS_PATH", "PIPX_HOME", "UV_TOOL_DIR"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(scanned.user_root.parents[3]))
    data = _scan("--dry-run", "--json", "--store", str(tmp_path / "store")).json()
    assert data["roots"] == [str(scanned.user_root)]
    assert [(v["path"], v["kind"]) for v in data["venvs"]] == [
        (str(scanned.user_root.parents[2]), "user-site")
    ]


def test_status_counts_the_files_each_tree_shares(scanned: Scanned) -> None:
    shared = {Path(v["path"]).name: v["files_shared"] for v in scanned.status["venvs"]}
    # The venv's 4 pycs are objects too (its build is known); the trees' are private.
    assert shared == {"a": len(SHARED) + 4, "pool": 8, "pfx": 8, ".local": 8}
    assert scanned.status["warnings"] == []


def test_a_venv_inside_a_user_base_is_its_own_in_status(tmp_path: Path, wheelhouse: Path) -> None:
    """~/.local holds the user site and pipenv's venvs: status counts the venv's shared
    files for the venv alone, not for the user site's tree around it too."""
    base = tmp_path / "home" / ".local"
    pip_install_tree(wheelhouse, "--prefix", base, "alpha==1.0")
    create_venv(base / "share" / "virtualenvs" / "s", wheelhouse, "alpha==1.0")
    store = str(tmp_path / "store")
    found = _scan("--json", "--store", store, str(base), home=tmp_path / "home").json()
    assert [v["kind"] for v in found["venvs"]] == ["user-site", "venv"]
    status = run_cli("status", "--json", "--store", store, str(base))
    assert status.returncode == 0, status
    shared = {Path(v["path"]).name: v["files_shared"] for v in status.json()["venvs"]}
    assert shared == {".local": len(SHARED), "s": len(SHARED) + 4}  # and its pycs
