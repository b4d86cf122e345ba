"""Fixtures: a wheelhouse of real wheels built here, a venv factory, and scratch folders.

Everything lives under pytest's tmp paths and installs offline from the wheelhouse.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import (
    COW_FILESYSTEMS,
    MakeVenv,
    MakeVenvs,
    Venv,
    create_venv,
    create_venvs,
    hold_lock,
    loop_filesystem_at,
    tmpfs_at,
)
from wheelbuilder import build_wheelhouse


@pytest.fixture(scope="session", autouse=True)
def temp_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """TMPDIR for the session and the children it starts: what a killed run leaves there
    (its spool) stays under pytest's tmp paths, not in the machine's /tmp."""
    folder = tmp_path_factory.mktemp("tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr("tempfile.tempdir", None)  # read TMPDIR again
        yield folder


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alpha 1.0, alpha 2.0 and beta 1.0 as wheels, built once per session."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    build_wheelhouse(folder)
    return folder


@pytest.fixture
def make_venv(wheelhouse: Path) -> MakeVenv:
    """``make_venv(root / "a", "alpha==1.0", "beta==1.0")`` -> a real venv at that path."""

    def make(path: Path, *requirements: str) -> Venv:
        return create_venv(path, wheelhouse, *requirements)

    return make


@pytest.fixture
def make_venvs(wheelhouse: Path) -> MakeVenvs:
    """``a, b = make_venvs(root, a=["alpha==1.0"], b=["alpha==2.0"])``, built in parallel."""

    def make(root: Path, **requirements: list[str]) -> tuple[Venv, ...]:
        return create_venvs(wheelhouse, root, **requirements)

    return make


@pytest.fixture
def pair(make_venvs: MakeVenvs, venv_root: Path) -> tuple[Venv, ...]:
    """Venvs A and B in venv_root with the same alpha 1.0: every file of A has a twin in B."""
    return make_venvs(venv_root, a=["alpha==1.0"], b=["alpha==1.0"])


@pytest.fixture
def venv_root(tmp_path: Path) -> Path:
    """The root the scan walks; each test puts its venvs in here."""
    root = tmp_path / "venvs"
    root.mkdir()
    return root


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """Where the store goes: on the venvs' filesystem, outside the root, not yet created."""
    return tmp_path / "store"


@pytest.fixture
def held_lock(store_dir: Path) -> Iterator[int]:
    """store_dir's lock, held by this process as another run holds it; yields its pid.

    The store must exist first: request this after the fixture that scans into store_dir
    (or take it with ``request.getfixturevalue`` once the test made the store). It never
    makes the lock file itself, so a store not made yet fails here, not later.
    """
    with hold_lock(store_dir) as pid:
        yield pid


@pytest.fixture
def outside_dir(tmp_path: Path) -> Path:
    """A folder outside every venv and every root, for files the scan must never touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def tmpfs_mount(tmp_path: Path) -> Iterator[Path]:
    """A fresh tmpfs (another filesystem than tmp_path's); needs root and mount(2)."""
    mount_point = tmp_path / "otherfs"
    mount_point.mkdir()
    with tmpfs_at(mount_point, "64m"):
        yield mount_point


@pytest.fixture(params=COW_FILESYSTEMS)
def cow_mount(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A fresh loop-mounted copy-on-write filesystem, xfs with reflink and btrfs in turn;
    needs root, the mkfs tools and a loop device."""
    mount_point = tmp_path / request.param
    mount_point.mkdir()
    with loop_filesystem_at(mount_point, tmp_path / f"{request.param}.img", request.param):
        yield mount_point


@pytest.fixture
def uv_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """uv's cache in tmp_path, and a home with no other cache: the only cache looked in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("CONDA_PKGS_DIRS", raising=False)
    monkeypatch.delenv("PDM_CACHE_DIR", raising=False)
    monkeypatch.delenv("POETRY_CACHE_DIR", raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uvcache"))
    return tmp_path / "uvcache"


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """read_only(folder): a read-only bind mount over it as root (who may write in any
    folder whatever its mode), else chmod 0o555. Undone at teardown."""
    undo: list[list[str] | Path] = []

    def make(target: Path) -> None:
        if os.geteuid() != 0:
            target.chmod(0o555)
            undo.append(target)
            return
        for argv in (
            ["mount", "--bind", str(target), str(target)],
            ["mount", "-o", "remount,bind,ro", str(target)],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"cannot make a read-only bind mount: {done.stderr.strip()!r}")
            if argv[1] == "--bind":
                undo.append(["umount", "-l", str(target)])

    yield make
    for item in reversed(undo):
        if isinstance(item, Path):
            item.chmod(0o755)
        else:
            subprocess.run(item, check=False)
