"""Finding virtualenvs under roots, and their site-packages folders."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .interpreter import Build, Builds, python_version


@dataclass(frozen=True, slots=True)
class Venv:
    root: str  # absolute, symlink-free path of the folder holding pyvenv.cfg
    device: int
    site_packages: tuple[str, ...]  # absolute paths, each real folder once
    ino: int = 0  # the root's inode when it was found: a later open must find the same
    build: Build | None = None  # the interpreter build; None: unknown, pycs not shared


@dataclass(frozen=True, slots=True)
class Discovery:
    venvs: tuple[Venv, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, reason) for folders that look like venvs


def default_roots(environ: os._Environ[str] | dict[str, str] | None = None) -> list[Path]:
    """The well-known venv homes of the current user that exist."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
    candidates = [
        Path(env["WORKON_HOME"]) if env.get("WORKON_HOME") else home / ".virtualenvs",
        data / "virtualenvs",  # pipenv
        Path(env["POETRY_VIRTUALENVS_PATH"])
        if env.get("POETRY_VIRTUALENVS_PATH")
        else cache / "pypoetry" / "virtualenvs",
        Path(env["PIPX_HOME"]) / "venvs" if env.get("PIPX_HOME") else data / "pipx" / "venvs",
        home / ".local" / "pipx" / "venvs",  # pipx before 1.3
        data / "hatch" / "env",
        Path(env["UV_TOOL_DIR"]) if env.get("UV_TOOL_DIR") else data / "uv" / "tools",
    ]
    seen: set[Path] = set()
    roots = []
    for path in candidates:
        if path not in seen and path.is_dir():
            seen.add(path)
            roots.append(path)
    return roots


def read_pyvenv_cfg(text: str) -> dict[str, str]:
    """Parse pyvenv.cfg the way CPython's site.py does: `key = value` lines."""
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip().lower()] = value.strip()
    return config


def _site_packages(root: str) -> tuple[str, ...]:
    """Real site-packages folders of a venv; lib64 -> lib symlinks count once."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    candidates = [os.path.join(root, "Lib", "site-packages")]
    for lib in ("lib", "lib64"):
        lib_dir = os.path.join(root, lib)
        try:
            with os.scandir(lib_dir) as it:
                names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        if os.path.islink(lib_dir):
            continue  # lib64 -> lib: the real folder is listed under its own name
        candidates += [os.path.join(lib_dir, name, "site-packages") for name in names]
    for path in candidates:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            found.append(path)
    return tuple(found)


def _venv_at(path: str, skipped: list[tuple[str, str]], builds: Builds) -> Venv | None:
    cfg = os.path.join(path, "pyvenv.cfg")
    try:
        st = os.lstat(cfg)
        if not stat.S_ISREG(st.st_mode):
            return None
        with open(cfg, encoding="utf-8", errors="replace") as f:
            config = read_pyvenv_cfg(f.read(65536))
    except FileNotFoundError:
        return None
    except OSError as exc:
        skipped.append((path, f"cannot read pyvenv.cfg: {exc.strerror}"))
        return None
    if "home" not in config:
        skipped.append((path, "pyvenv.cfg has no 'home' key, so this is not a virtualenv"))
        return None
    site_packages = _site_packages(path)
    if not site_packages:
        skipped.append((path, "no site-packages folder found"))
        return None
    st = os.lstat(path)
    build = builds.of(path, python_version(config, site_packages))
    return Venv(path, st.st_dev, site_packages, st.st_ino, build)


def _walk(root: str, skipped: list[tuple[str, str]], builds: Builds) -> Iterator[Venv]:
    """Depth-first walk that never follows symlinks and does not descend into venvs."""
    stack = [root]
    seen: set[tuple[int, int]] = set()
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except OSError as exc:
            skipped.append((path, f"cannot read: {exc.strerror}"))
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        venv = _venv_at(path, skipped, builds)
        if venv is not None:
            yield venv
            continue
        try:
            with os.scandir(path) as it:
                children = [e.path for e in it if e.is_dir(follow_symlinks=False)]
        except OSError as exc:
            skipped.append((path, f"cannot list: {exc.strerror}"))
            continue
        stack.extend(sorted(children, reverse=True))


def find_venvs(roots: Sequence[str | os.PathLike[str]]) -> Discovery:
    """Every venv under the roots, each real venv folder once, in a stable order."""
    venvs: list[Venv] = []
    skipped: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    builds = Builds()
    for root in roots:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise UsageError(f"root {os.fspath(root)!r} is not a folder")
        for venv in _walk(real, skipped, builds):
            st = os.lstat(venv.root)
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                venvs.append(venv)
    return Discovery(tuple(venvs), tuple(skipped))
