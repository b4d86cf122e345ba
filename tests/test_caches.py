"""Tests for dedupe.caches: which cache folders are looked in, and names found there by
inode, grouped by the cache's subfolders, symlinks never followed."""

from __future__ import annotations

import os
from pathlib import Path

from dedupe.caches import NamesIn, cache_folders, find_names


def test_cache_folders_are_the_existing_ones_of_uv_conda_pdm_and_poetry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for folder in ("uvcache", "home/.cache/pdm", "home/miniconda3/pkgs", "pkgs-a"):
        (tmp_path / folder).mkdir(parents=True)
    env = {
        "HOME": str(home),
        "UV_CACHE_DIR": str(tmp_path / "uvcache"),
        "CONDA_PKGS_DIRS": f"{tmp_path / 'pkgs-a'},{tmp_path / 'no-such-pkgs'}",
    }
    assert cache_folders(env) == [
        str(tmp_path / "uvcache"),
        str(tmp_path / "pkgs-a"),
        str(home / "miniconda3" / "pkgs"),
        str(home / ".cache" / "pdm"),
    ]
    # Without UV_CACHE_DIR, uv's cache is XDG_CACHE_HOME/uv; a folder named twice counts once.
    (tmp_path / "xdg" / "uv").mkdir(parents=True)
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    env["CONDA_PKGS_DIRS"] = str(tmp_path / "xdg" / "uv")
    assert cache_folders(env) == [str(tmp_path / "xdg" / "uv"), str(home / "miniconda3" / "pkgs")]


def test_names_are_found_by_inode_and_grouped_by_subfolder(tmp_path: Path) -> None:
    cache, venv = tmp_path / "uv", tmp_path / "venv"
    for folder in ("archive-v0/x1/pkg", "archive-v0/x2", "wheels-v5", "other"):
        (cache / folder).mkdir(parents=True)
    venv.mkdir()
    files = []
    for n in range(3):
        path = venv / f"f{n}.py"
        path.write_text(f"{n}\n")
        files.append(path)
    os.link(files[0], cache / "archive-v0" / "x1" / "pkg" / "f0.py")
    os.link(files[0], cache / "archive-v0" / "x2" / "f0.py")
    os.link(files[1], cache / "wheels-v5" / "f1.py")
    os.symlink(files[2], cache / "other" / "f2.py")  # a symlink is no name of the inode
    st = [os.lstat(f) for f in files]
    wanted = {(s.st_dev, s.st_ino): 2 for s in st}

    found = find_names(wanted, [str(cache), str(tmp_path / "no-such-cache")])

    assert found.found == (
        NamesIn(str(cache / "archive-v0"), 2),
        NamesIn(str(cache / "wheels-v5"), 1),
    )
    assert found.not_found == 1 + 2  # f1's second name, f2's two
    assert found.looked_in == (str(cache),)
    assert found.names == 6


def test_nothing_wanted_walks_nothing(tmp_path: Path) -> None:
    (tmp_path / "uv").mkdir()
    assert find_names({}, [str(tmp_path / "uv")]).looked_in == ()
