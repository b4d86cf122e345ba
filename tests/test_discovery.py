"""Tests for dedupe.discovery: which folders are venvs and package trees, each found once.

Real trees: venvs made by ``python -m venv``, and `pip install --target` and `--prefix`
trees of the wheelhouse's wheels, built once for the module. The user site is a
``--prefix`` install into a temp folder's ``.local`` (what ``pip install --user`` lays
out), found through a HOME that is that temp folder, never the real one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import Venv, create_venv, pip_install_tree

from dedupe.discovery import Kind, default_roots, find_venvs, wheel_version

VERSION = sys.version_info[:2]
PYTHON = f"python{VERSION[0]}.{VERSION[1]}"


@dataclass(frozen=True)
class Trees:
    root: Path  # holds the venv, the --target folder and the --prefix tree
    venv: Venv
    pool: Path  # pip install --target
    prefix: Path  # pip install --prefix
    home: Path  # HOME of the user whose user site (home/.local) holds alpha
    share_venv: Venv  # a venv under the user base, as pipenv puts them


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Trees:
    base = tmp_path_factory.mktemp("discovery")
    root, home = base / "root", base / "home"
    venv = create_venv(root / "a", wheelhouse, "alpha==1.0")
    pip_install_tree(wheelhouse, "--target", root / "pool", "alpha==1.0")
    pip_install_tree(wheelhouse, "--prefix", root / "pfx", "alpha==1.0")
    pip_install_tree(wheelhouse, "--prefix", home / ".local", "beta==1.0", "--no-deps")
    share_venv = create_venv(home / ".local" / "share" / "virtualenvs" / "s", wheelhouse)
    return Trees(root, venv, root / "pool", root / "pfx", home, share_venv)


@pytest.fixture
def home(trees: Trees, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME is the trees' home, and no variable points at another venv home."""
    for name in ("PYTHONUSERBASE", "XDG_DATA_HOME", "XDG_CACHE_HOME", "WORKON_HOME",
                 "POETRY_VIRTUALENVS_PATH", "PIPX_HOME", "UV_TOOL_DIR"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(trees.home))
    return trees.home


def test_each_kind_of_tree_is_found_with_its_root_and_site_packages(trees: Trees) -> None:
    found = {Path(v.root).name: v for v in find_venvs([trees.root]).venvs}
    assert {name: v.kind for name, v in found.items()} == {
        "a": Kind.VENV,
        "pool": Kind.TARGET,
        "pfx": Kind.PREFIX,
    }
    assert found["pool"].site_packages == (str(trees.pool),)
    assert found["pfx"].site_packages == (str(trees.prefix / "lib" / PYTHON / "site-packages"),)
    for name, path in (("pool", trees.pool), ("pfx", trees.prefix)):
        st = os.lstat(path)
        assert (found[name].device, found[name].ino) == (st.st_dev, st.st_ino)
        # No interpreter of its own: the build is unknown, so its pycs are not shared.
        assert found[name].build is None


def test_the_version_comes_from_the_path_or_is_unknown(trees: Trees) -> None:
    found = {Path(v.root).name: v for v in find_venvs([trees.root]).venvs}
    assert found["pfx"].version == found["a"].version == VERSION
    # py3-none-any wheels in a folder whose path names no version: nothing to tell by.
    assert found["pool"].version is None


def _dist_info(folder: Path, name: str, *tags: str) -> None:
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "RECORD").write_text(f"{info.name}/RECORD,,\n")
    wheel = "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n" + "".join(f"Tag: {t}\n" for t in tags)
    (info / "WHEEL").write_text(wheel)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        pytest.param({"x": ["cp311-cp311-manylinux_2_17_x86_64"]}, (3, 11), id="one-cpython"),
        pytest.param(
            {"x": ["cp312-cp312-linux_x86_64"], "y": ["py3-none-any"]}, (3, 12), id="with-pure"
        ),
        pytest.param(
            {"x": ["cp311-cp311-linux_x86_64"], "y": ["cp312-cp312-linux_x86_64"]},
            None,
            id="two-versions",
        ),
        pytest.param({"x": ["cp38-abi3-linux_x86_64"]}, None, id="stable-abi-says-no-version"),
        pytest.param({"x": ["py3-none-any"]}, None, id="pure-only"),
    ],
)
def test_wheel_tags_give_the_version_only_when_unambiguous(
    tmp_path: Path, tags: dict[str, list[str]], expected: tuple[int, int] | None
) -> None:
    for name, dist_tags in tags.items():
        _dist_info(tmp_path, name, *dist_tags)
    assert wheel_version(str(tmp_path)) == expected
    (tree,) = find_venvs([tmp_path]).venvs
    assert (tree.kind, tree.version) == (Kind.TARGET, expected)


def test_a_root_inside_a_venv_is_that_venv_found_once(trees: Trees) -> None:
    site = trees.venv.site_packages
    discovery = find_venvs([site, trees.root])
    roots = [v.root for v in discovery.venvs]
    assert roots.count(str(trees.venv.path)) == 1
    (venv,) = (v for v in discovery.venvs if v.root == str(trees.venv.path))
    assert venv.kind is Kind.VENV and venv.site_packages == (str(site),)


def test_a_root_that_is_a_prefix_site_packages_is_the_prefix_tree(trees: Trees) -> None:
    (tree,) = find_venvs([trees.prefix / "lib" / PYTHON / "site-packages"]).venvs
    assert (tree.root, tree.kind) == (str(trees.prefix), Kind.PREFIX)


def test_a_target_folder_inside_a_venv_is_not_found_apart(tmp_path: Path, wheelhouse: Path) -> None:
    venv = create_venv(tmp_path / "v", wheelhouse)
    pip_install_tree(wheelhouse, "--target", venv.path / "vendor", "alpha==1.0")
    assert [(v.root, v.kind) for v in find_venvs([tmp_path]).venvs] == [(str(venv.path), Kind.VENV)]


def test_the_user_site_is_a_default_root_and_a_user_site_tree(trees: Trees, home: Path) -> None:
    user_site = home / ".local" / "lib" / PYTHON / "site-packages"
    roots = default_roots()
    assert user_site in roots
    trees_found = [v for v in find_venvs(roots).venvs if v.kind is Kind.USER_SITE]
    assert [(v.root, v.site_packages) for v in trees_found] == [
        (str(home / ".local"), (str(user_site),))
    ]


def test_a_user_base_given_as_root_is_walked_beside_its_lib(trees: Trees, home: Path) -> None:
    """~/.local holds the user site and venv homes (share/virtualenvs): both are found,
    and its lib folder is not walked again (no --target folder is found in site-packages)."""
    found = [(v.root, v.kind) for v in find_venvs([home / ".local"]).venvs]
    assert found == [
        (str(home / ".local"), Kind.USER_SITE),
        (str(trees.share_venv.path), Kind.VENV),
    ]


def test_a_root_with_nothing_to_scan_is_named(tmp_path: Path, trees: Trees) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    discovery = find_venvs([tmp_path / "empty", trees.root])
    assert discovery.empty_roots == (str(tmp_path / "empty"),)
    assert len(discovery.venvs) == 3


def test_a_folder_with_a_pyvenv_cfg_without_home_is_no_tree(
    tmp_path: Path, wheelhouse: Path
) -> None:
    """Not a venv, skipped with its reason: nor is it a prefix tree, walked from above or
    given by its site-packages."""
    venv = create_venv(tmp_path / "v", wheelhouse, "alpha==1.0")
    (venv.path / "pyvenv.cfg").write_text("include-system-site-packages = false\n")
    for root in (tmp_path, venv.site_packages):
        discovery = find_venvs([root])
        assert discovery.venvs == (), root
        assert [path for path, _reason in discovery.skipped] == [str(venv.path)], root
