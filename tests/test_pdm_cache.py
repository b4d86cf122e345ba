"""pdm's install.cache venvs: their files are symlinks into pdm's cache, listed in RECORD
with an empty digest. They are counted as symlinks and said once per venv, not warned of.

pdm is not installed here: each venv is made by pip, then its files are replaced by
symlinks into a cache folder outside it and its RECORD lines rewritten as pdm writes them
(pdm's InstallDestination.write_to_fs links a cached file and records `sha256=` with no
digest and the file's size; its INSTALLER says `pdm`, REFER_TO names the cache).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    ALPHA_FILES,
    CliRun,
    PathState,
    Venv,
    create_venvs,
    inodes,
    run_cli,
    snapshot,
    snapshot_diff,
)
from wheelbuilder import record_hash

# alpha 1.0's non-empty files that pdm links from its cache (the package and its metadata).
LINKED = ALPHA_FILES


def _scan(*args: str) -> CliRun:
    run = run_cli("scan", "-j", "1", *args)
    assert run.returncode == 0, run
    return run


def _as_pdm_installs(venv: Venv, cache: Path) -> int:
    """Make a pip-made venv look as pdm's install.cache leaves it: every file of alpha that
    pdm links (the package and its wheel metadata) a symlink into the cache, listed in
    RECORD as `path,sha256=,size`, INSTALLER `pdm` and REFER_TO naming the cache. Returns
    how many symlinks it made."""
    site = venv.site_packages
    record = site / "alpha-1.0.dist-info" / "RECORD"
    own = {"RECORD", "INSTALLER", "REQUESTED"}
    lines, links = [], 0
    for line in record.read_text().splitlines():
        path, _hash, size = line.rsplit(",", 2)
        name = path.rsplit("/", 1)[-1]
        if path.startswith("..") or "__pycache__" in path or name in own:
            if "__pycache__" not in path:
                lines.append(line)
            continue
        target = cache / path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(site / path, target)
        (site / path).unlink()
        (site / path).symlink_to(target)
        lines.append(f"{path},sha256=,{size}")
        links += 1
    shutil.rmtree(site / "alpha" / "__pycache__")  # pdm compiles nothing it symlinks
    (site / "alpha-1.0.dist-info" / "INSTALLER").write_text("pdm")
    lines = [line for line in lines if not line.startswith("alpha-1.0.dist-info/INSTALLER,")]
    lines.append(f"alpha-1.0.dist-info/INSTALLER,{record_hash(b'pdm')},3")
    (site / "alpha-1.0.dist-info" / "REFER_TO").write_text(str(cache))
    refer_to = str(cache).encode()
    lines.append(f"alpha-1.0.dist-info/REFER_TO,{record_hash(refer_to)},{len(refer_to)}")
    record.write_text("\n".join(lines) + "\n")
    return links


@dataclass(frozen=True)
class PdmScanned:
    venvs: dict[str, Venv]
    cache: Path
    links: int
    links_before: dict[str, str]
    cache_before: dict[str, PathState]
    cache_inodes_before: dict[str, tuple[int, int]]
    real: dict[str, Any]
    text: CliRun
    rerun: dict[str, Any]


@pytest.fixture(scope="module")
def pdm_scanned(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> PdmScanned:
    base = tmp_path_factory.mktemp("pdm")
    root, cache, store = base / "venvs", base / "pdm-cache" / "alpha-1.0", base / "store"
    built = create_venvs(wheelhouse, root, p1=["alpha==1.0"], p2=["alpha==1.0"], q=["alpha==1.0"])
    venvs = dict(zip(("p1", "p2", "q"), built, strict=True))
    links = _as_pdm_installs(venvs["p1"], cache)
    assert _as_pdm_installs(venvs["p2"], cache) == links
    links_before = {str(path): os.readlink(path) for path in root.rglob("*") if path.is_symlink()}
    cache_before, cache_inodes_before = snapshot(cache), inodes(cache)
    real = _scan("--json", "--store", str(store), str(root)).json()
    text = _scan("--dry-run", "--store", str(store), str(root))
    rerun = _scan("--json", "--store", str(store), str(root)).json()
    return PdmScanned(
        venvs, cache, links, links_before, cache_before, cache_inodes_before, real, text, rerun
    )


def test_pdm_cache_links_give_no_warning(pdm_scanned: PdmScanned) -> None:
    assert pdm_scanned.links == len(LINKED) + 1  # and alpha/py.typed
    for result in (pdm_scanned.real, pdm_scanned.rerun):
        assert result["warnings"] == [] and result["errors"] == []


def test_pdm_cache_links_are_counted_as_symlinks(pdm_scanned: PdmScanned) -> None:
    for result in (pdm_scanned.real, pdm_scanned.rerun):
        venvs = {Path(v["path"]).name: v for v in result["venvs"]}
        for name in ("p1", "p2"):
            skipped = venvs[name]["skipped"]
            assert skipped["symlink"] == pdm_scanned.links, name
            assert not {"no-hash", "malformed-record"} & skipped.keys(), name
        assert "symlink" not in venvs["q"]["skipped"]


def test_pdm_cache_links_are_said_once_per_venv(pdm_scanned: PdmScanned) -> None:
    note = f"{pdm_scanned.links} symlinked files, installed by pdm's cache: not shared"
    for result in (pdm_scanned.real, pdm_scanned.rerun):
        notes = {Path(v["path"]).name: v["notes"] for v in result["venvs"]}
        assert notes == {"p1": [note], "p2": [note], "q": []}
    said = [line for line in pdm_scanned.text.stdout.splitlines() if "pdm's cache" in line]
    assert said == [f"note: {pdm_scanned.venvs[name].path}: {note}" for name in ("p1", "p2")]
    assert "warning" not in pdm_scanned.text.stdout


def test_pdm_cache_and_links_are_left_as_they_are(pdm_scanned: PdmScanned) -> None:
    after = {
        str(p): os.readlink(p)
        for p in pdm_scanned.venvs["p1"].path.parent.rglob("*")
        if p.is_symlink()
    }
    assert after == pdm_scanned.links_before
    assert snapshot_diff(pdm_scanned.cache_before, snapshot(pdm_scanned.cache)) == []
    assert inodes(pdm_scanned.cache) == pdm_scanned.cache_inodes_before
    for path in pdm_scanned.cache.rglob("*"):
        if path.is_file():
            assert os.lstat(path).st_nlink == 1, path
    # The venv pip made has no copy to share its files with: the cache holds none.
    q = pdm_scanned.venvs["q"]
    for relpath in LINKED:
        assert os.lstat(q.file(relpath)).st_nlink == 1, relpath


def test_an_older_pdm_link_of_a_whole_package_folder_is_one_symlink(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Older pdm releases linked a package's whole folder, recorded as `alpha,,`."""
    (venv,) = create_venvs(wheelhouse, tmp_path / "venvs", p=["alpha==1.0"])
    site, cache = venv.site_packages, tmp_path / "cache"
    cache.mkdir()
    shutil.move(site / "alpha", cache / "alpha")
    (site / "alpha").symlink_to(cache / "alpha", target_is_directory=True)
    record = site / "alpha-1.0.dist-info" / "RECORD"
    kept = [line for line in record.read_text().splitlines() if not line.startswith("alpha/")]
    record.write_text("\n".join([*kept, "alpha,,"]) + "\n")
    (site / "alpha-1.0.dist-info" / "INSTALLER").write_text("pdm")
    before = snapshot(cache)
    result = _scan("--json", "--store", str(tmp_path / "store"), str(tmp_path / "venvs")).json()
    (report,) = result["venvs"]
    assert result["warnings"] == []
    assert report["skipped"]["symlink"] == 1
    assert report["notes"] == ["1 symlinked files, installed by pdm's cache: not shared"]
    assert os.readlink(site / "alpha") == str(cache / "alpha")
    assert snapshot_diff(before, snapshot(cache)) == []
