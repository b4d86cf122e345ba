"""Finding virtualenvs and package trees under roots, and their site-packages folders.

A package tree is a folder that holds RECORD-installed distributions without being a
venv: a `pip install --target DIR` folder (dist-infos directly in DIR), a `pip install
--prefix DIR` tree (DIR/lib/pythonX.Y/site-packages), or the user site (the same under
the user base, ~/.local). Each is scanned like a venv whose root is the tree's root.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TextIO

from .errors import UsageError
from .interpreter import Build, Builds, python_version
from .quiet import open_quietly, scandir_quietly

__all__ = [
    "Discovery",
    "Kind",
    "Venv",
    "default_roots",
    "find_venvs",
    "read_pyvenv_cfg",
    "user_base",
    "wheel_version",
]


class Kind(str, Enum):
    """What a tree is; its value is the report's `kind`."""

    VENV = "venv"
    TARGET = "target"  # pip install --target DIR: dist-infos directly in DIR
    PREFIX = "prefix"  # pip install --prefix DIR: DIR/lib/pythonX.Y/site-packages
    USER_SITE = "user-site"  # a prefix tree at the user base (~/.local)

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        """What the text report calls it."""
        return _KIND_LABELS[self]


_KIND_LABELS = {
    Kind.VENV: "venv",
    Kind.TARGET: "--target folder",
    Kind.PREFIX: "--prefix tree",
    Kind.USER_SITE: "user site",
}


@dataclass(frozen=True, slots=True)
class Venv:
    """A venv, or a package tree scanned like one (kind says which)."""

    root: str  # absolute, symlink-free: the folder holding pyvenv.cfg, or the tree's root
    device: int
    site_packages: tuple[str, ...]  # absolute paths, each real folder once
    ino: int = 0  # the root's inode when it was found: a later open must find the same
    build: Build | None = None  # the interpreter build; None: unknown, pycs not shared
    kind: Kind = Kind.VENV
    # The minor version its files were installed for, when known (a package tree has
    # no interpreter of its own: its build stays unknown, so its pycs are not shared).
    version: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Discovery:
    venvs: tuple[Venv, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, reason) for folders that look like venvs
    empty_roots: tuple[str, ...] = ()  # roots under which no venv or package tree was found


def user_base(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """The user base that pip's --user installs into: $PYTHONUSERBASE, else ~/.local."""
    env = os.environ if environ is None else environ
    if env.get("PYTHONUSERBASE"):
        return Path(env["PYTHONUSERBASE"])
    return Path(env.get("HOME") or Path.home()) / ".local"


def default_roots(environ: os._Environ[str] | dict[str, str] | None = None) -> list[Path]:
    """The well-known venv homes of the current user that exist, and the user sites."""
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
        # The user site of each Python version: scanned as the user base's package tree.
        *sorted(user_base(env).glob("lib/python*/site-packages")),
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
            with scandir_quietly(lib_dir) as it:
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


def _subfolders(path: str) -> list[str]:
    """The paths of the folders in the folder path (OSError when it cannot be listed)."""
    with scandir_quietly(path) as it:
        return [os.path.join(path, e.name) for e in it if e.is_dir(follow_symlinks=False)]


def _text(path: str) -> TextIO:
    """A small text file of a venv, opened to read without moving its atime, and without
    blocking on a FIFO put in its place."""
    fd = open_quietly(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        return open(fd, encoding="utf-8", errors="replace")
    except BaseException:
        os.close(fd)
        raise


def _venv_at(path: str, skipped: list[tuple[str, str]], builds: Builds) -> Venv | None:
    cfg = os.path.join(path, "pyvenv.cfg")
    try:
        st = os.lstat(cfg)
        if not stat.S_ISREG(st.st_mode):
            return None
        with _text(cfg) as f:
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
    version = python_version(config, site_packages)
    return Venv(
        path, st.st_dev, site_packages, st.st_ino, builds.of(path, version), Kind.VENV, version
    )


_LIB_DIRS = frozenset({"lib", "lib64", "Lib"})  # where a prefix keeps its site-packages
# A prefix's site-packages: the prefix, then lib/pythonX.Y/site-packages (or lib64).
_PREFIX_SITE = re.compile(r"(.+)/lib(?:64)?/python\d+\.\d+[a-z]*/site-packages")
_WHEEL_TAG = re.compile(r"cp(\d)(\d+)-cp\1\2[a-z]*-")  # cp311-cp311-linux_x86_64


def _holds_records(folder: str, subfolders: list[str] | None = None) -> bool:
    """Whether the folder holds a *.dist-info folder with a RECORD file in it; subfolders:
    the paths of its folders, when the caller listed it already."""
    if subfolders is None:
        try:
            subfolders = _subfolders(folder)
        except OSError:
            return False
    for info in (path for path in subfolders if path.endswith(".dist-info")):
        try:
            if stat.S_ISREG(os.lstat(os.path.join(info, "RECORD")).st_mode):
                return True
        except OSError:
            continue
    return False


def wheel_version(site_packages: str) -> tuple[int, int] | None:
    """The one CPython minor version that the WHEEL tags of the folder's dist-infos name
    (cp311-cp311-...); None when they name none (py3-none-any) or several."""
    found: set[tuple[int, int]] = set()
    try:
        infos = [p for p in _subfolders(site_packages) if p.endswith(".dist-info")]
    except OSError:
        return None
    for info in infos:
        try:
            with _text(os.path.join(info, "WHEEL")) as f:
                text = f.read(65536)
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            tag = _WHEEL_TAG.match(value.strip()) if key.strip().lower() == "tag" else None
            if tag:
                found.add((int(tag[1]), int(tag[2])))
    return found.pop() if len(found) == 1 else None


def _tree_version(site_packages: tuple[str, ...]) -> tuple[int, int] | None:
    """A package tree's minor version: from its lib/pythonX.Y folders, else from its
    dist-infos' WHEEL tags; None unless exactly one version is named."""
    by_path = {python_version({}, (path,)) for path in site_packages} - {None}
    if len(by_path) > 1:
        return None
    if by_path:
        return by_path.pop()
    versions = {wheel_version(path) for path in site_packages}
    return versions.pop() if len(versions) == 1 else None


def _tree(root: str, site_packages: tuple[str, ...], kind: Kind) -> Venv:
    # No interpreter of its own (a bin/python in a prefix may be any Python's): the
    # build stays unknown, so the tree's pycs are kept valid but not shared.
    st = os.lstat(root)
    version = _tree_version(site_packages)
    return Venv(root, st.st_dev, site_packages, st.st_ino, None, kind, version)


def _prefix_tree(path: str, users: str) -> Venv | None:
    """The prefix tree whose root is path, if its site-packages hold RECORDs."""
    site_packages = tuple(sp for sp in _site_packages(path) if _holds_records(sp))
    if not site_packages:
        return None
    return _tree(path, site_packages, Kind.USER_SITE if path == users else Kind.PREFIX)


def _tree_at(
    path: str,
    children: list[str],
    skipped: list[tuple[str, str]],
    builds: Builds,
    users: str,
    top: str,
) -> Venv | None:
    """The package tree at path, a folder that is no venv, if there is one; top is the
    root the walk began at."""
    if os.path.lexists(os.path.join(path, "pyvenv.cfg")):
        return None  # a venv that could not be used: skipped, with its reason
    if _LIB_DIRS.intersection(map(os.path.basename, children)):
        tree = _prefix_tree(path, users)
        if tree is not None:
            return tree
    if not _holds_records(path, children):  # the walk's listing: no second one per folder
        return None
    # A prefix's site-packages (a root given inside one) is scanned as the venv or prefix
    # it is part of: its RECORDs' ../../../bin paths stay inside the tree scanned.
    prefix = _PREFIX_SITE.fullmatch(path)
    if prefix is not None:
        above = prefix[1]
        if above == top or above.startswith(top.rstrip("/") + "/"):
            return None  # walked already: a venv that could not be used, skipped there
        if os.path.lexists(os.path.join(above, "pyvenv.cfg")):
            return _venv_at(above, skipped, builds)  # None: skipped, with its reason
        tree = _prefix_tree(above, users)
        if tree is not None:
            return tree
    return _tree(path, (path,), Kind.TARGET)


# A clone builds DST in the folder `.DST` + CLONE_BUILD_MARK + random, beside DST, and
# renames it into place at the end: such a folder is a half venv of a clone under way or
# killed (the next clone to DST removes it), never scanned.
CLONE_BUILD_MARK = ".venv-dedupe-tmp-"
_UNFINISHED_CLONE = "an unfinished venv-dedupe clone (the next clone to its name removes it)"


def _walk(root: str, skipped: list[tuple[str, str]], builds: Builds, users: str) -> Iterator[Venv]:
    """Depth-first walk that never follows symlinks and does not descend into venvs,
    --target folders or a prefix's lib folders."""
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
        name = os.path.basename(path)
        if name.startswith(".") and CLONE_BUILD_MARK in name:
            skipped.append((path, _UNFINISHED_CLONE))
            continue
        venv = _venv_at(path, skipped, builds)
        if venv is not None:
            yield venv
            continue
        try:
            children = _subfolders(path)
        except OSError as exc:
            skipped.append((path, f"cannot list: {exc.strerror}"))
            continue
        tree = _tree_at(path, children, skipped, builds, users, root)
        if tree is not None:
            yield tree
            if tree.root != path or tree.kind is Kind.TARGET:
                continue  # its folders are its packages (or another tree's)
            # A prefix's other folders (share, ...) may hold venvs: ~/.local/share/virtualenvs.
            children = [c for c in children if os.path.basename(c) not in _LIB_DIRS]
        stack.extend(sorted(children, reverse=True))


def find_venvs(roots: Sequence[str | os.PathLike[str]]) -> Discovery:
    """Every venv and package tree under the roots, each real root folder once, in a
    stable order."""
    venvs: list[Venv] = []
    skipped: list[tuple[str, str]] = []
    empty: list[str] = []
    seen: set[tuple[int, int]] = set()
    builds = Builds()
    users = os.path.realpath(user_base())
    for root in roots:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise UsageError(f"root {os.fspath(root)!r} is not a folder")
        found = False
        for venv in _walk(real, skipped, builds, users):
            found = True
            st = os.lstat(venv.root)
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                venvs.append(venv)
        if not found:
            empty.append(os.fspath(root))
    return Discovery(tuple(venvs), tuple(skipped), tuple(empty))
