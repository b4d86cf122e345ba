"""Helpers shared by the tests: real venvs, tree snapshots, inode and block accounting, the
store's objects and lock, CLI runs.

Kept apart from conftest.py so test modules can import them by name; conftest.py wraps
them in fixtures.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import marshal
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# The outer pip runs with the venv's interpreter through --python (pip >= 22.3). Keep it
# hermetic: no user or site config, no version check against the network.
PIP_ENV = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PIP_NO_INDEX": "1",
}

# The wheelhouse's alpha 1.0: its non-empty files that are no per-install file, the ones
# every install of it holds the same bytes of and a scan shares.
ALPHA_FILES = (
    "alpha/__init__.py",
    "alpha/core.py",
    "alpha/util.py",
    "alpha/cli.py",
    "alpha/data/table.csv",
    "alpha-1.0.dist-info/METADATA",
    "alpha-1.0.dist-info/WHEEL",
    "alpha-1.0.dist-info/entry_points.txt",
)
# The only names the tool may ever create next to a venv's files (its atomic-replace temps).
TEMP_PREFIX = ".venv-dedupe-tmp-"
CACHE_DIR = "scan-cache"  # where the scan keeps its memos of venvs (dedupe.memo)


@dataclass(frozen=True)
class Venv:
    """A venv made by ``python -m venv`` and filled by the outer pip."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def site_packages(self) -> Path:
        (found,) = self.path.glob("lib/python3*/site-packages")
        return found

    def file(self, relpath: str) -> Path:
        """A path relative to site-packages (how RECORD names installed files)."""
        return self.site_packages / relpath

    def record(self, dist_info: str) -> Path:
        return self.site_packages / dist_info / "RECORD"


# The make_venv fixture: make_venv(path, *requirements) -> Venv.
MakeVenv = Callable[..., Venv]
# The make_venvs fixture: make_venvs(root, a=[requirements], b=[...]) -> (Venv, Venv).
MakeVenvs = Callable[..., tuple[Venv, ...]]


def _run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"{argv!r} exited {completed.returncode}\n"
            f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
    return completed.stdout


def pip(venv: Venv, *args: str) -> str:
    """Run the outer pip against ``venv`` through ``--python``."""
    return _run([sys.executable, "-m", "pip", "--python", str(venv.python), *args], env=PIP_ENV)


def pip_install(venv: Venv, wheelhouse: Path, *args: str) -> str:
    """``pip install`` from the wheelhouse only, keeping pip's default .pyc compilation."""
    return pip(
        venv,
        "install",
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "--no-cache-dir",
        "-q",
        *args,
    )


def pip_install_tree(wheelhouse: Path, option: str, folder: Path, *requirements: str) -> Path:
    """``pip install --target DIR`` or ``--prefix DIR`` (option) from the wheelhouse, run by
    this interpreter: a package tree that is no venv. Returns its site-packages folder."""
    _run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheelhouse),
         "--no-cache-dir", "-q", option, str(folder), *requirements],
        env=PIP_ENV,
    )  # fmt: skip
    if option == "--target":
        return folder
    return folder / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def create_venv(path: Path, wheelhouse: Path, *requirements: str) -> Venv:
    """``python -m venv --without-pip`` then ``pip --python`` install from the wheelhouse.

    Much faster than ensurepip, and the venv is what a user gets from ``pip install``:
    pip's RECORD, INSTALLER, REQUESTED, console scripts and compiled .pyc files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    venv = Venv(path)
    if requirements:
        pip_install(venv, wheelhouse, *requirements)
    return venv


def create_venvs(wheelhouse: Path, root: Path, **requirements: Sequence[str]) -> tuple[Venv, ...]:
    """``create_venvs(wh, root, a=["alpha==1.0"], b=[...])`` -> (venv a, venv b), in order.

    The pip runs are CPU-bound and independent, so they run side by side: the suite's
    time is mostly spent here.
    """
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [
            pool.submit(create_venv, root / name, wheelhouse, *reqs)
            for name, reqs in requirements.items()
        ]
        return tuple(future.result() for future in futures)


def find_uv() -> str | None:
    """A `uv` on PATH or beside this interpreter (a dev venv that has it), else None."""
    beside = Path(sys.executable).parent / "uv"
    return shutil.which("uv") or (str(beside) if beside.is_file() else None)


def create_uv_venv(
    path: Path, wheelhouse: Path, cache: Path, link_mode: str, *requirements: str
) -> Venv:
    """``uv venv`` then ``uv pip install --link-mode MODE`` offline from the wheelhouse,
    with uv's cache at ``cache``; the test is skipped where no uv can be found."""
    uv = find_uv()
    if uv is None:
        pytest.skip("no uv on PATH or beside the test interpreter")
    env = {"UV_CACHE_DIR": str(cache), "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
    path.parent.mkdir(parents=True, exist_ok=True)
    _run([uv, "venv", "-q", "--python", sys.executable, str(path)], env=env)
    venv = Venv(path)
    if requirements:
        _run(
            [uv, "pip", "install", "-q", "--offline", "--no-index", "--find-links",
             str(wheelhouse), "--python", str(venv.python), "--link-mode", link_mode,
             *requirements],
            env=env,
        )  # fmt: skip
    return venv


def run_python(venv: Venv, code: str) -> str:
    """Run ``code`` with the venv's own interpreter; fail the test on a non-zero exit."""
    return _run([str(venv.python), "-c", code])


def run_console_script(venv: Venv, name: str) -> str:
    return _run([str(venv.bin / name)])


def wheel_files(wheelhouse: Path, requirement: str) -> dict[str, bytes]:
    """{RECORD path: bytes} of what pip installs from the wheel of ``name==version``: every
    member of the wheel but its RECORD (pip writes its own, and INSTALLER, REQUESTED and
    the console scripts, none of them in the wheel)."""
    name, version = requirement.split("==")
    with zipfile.ZipFile(wheelhouse / f"{name}-{version}-py3-none-any.whl") as wheel:
        return {
            member: wheel.read(member)
            for member in wheel.namelist()
            if member != f"{name}-{version}.dist-info/RECORD"
        }


# --- editing installed RECORDs ----------------------------------------------------------


def replace_record_entry(venv: Venv, dist_info: str, relpath: str, new_line: str) -> None:
    """Replace the RECORD line of ``relpath`` with ``new_line`` (written as pip would)."""
    record = venv.record(dist_info)
    lines = record.read_text(encoding="utf-8").splitlines()
    matching = [i for i, line in enumerate(lines) if line.startswith(f"{relpath},")]
    assert len(matching) == 1, f"{relpath} is not in {record} once: {lines}"
    lines[matching[0]] = new_line
    record.write_text("\n".join(lines) + "\n", encoding="utf-8")


def append_record_lines(venv: Venv, dist_info: str, *new_lines: str) -> None:
    record = venv.record(dist_info)
    with record.open("a", encoding="utf-8") as out:
        out.writelines(f"{line}\n" for line in new_lines)


# --- snapshots ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PycContent:
    """What a .pyc holds, compared as the importer would use it.

    Sharing one pyc between venvs is allowed (DESIGN: the importer rewrites
    ``co_filename`` on load), so its bytes may change: the embedded source path differs
    per venv, and the header's source mtime follows the source's new inode. What must
    not change is the magic, the flags and the code. Code objects compare equal without
    regard to ``co_filename`` (nested code objects too), which is exactly that.
    """

    magic: bytes
    flags: int
    code: object


@dataclass(frozen=True)
class PathState:
    """What must not change about a path when files are only shared.

    ``content`` is the sha256 of a regular file's bytes (a PycContent for bytecode), the
    target of a symlink, or None. Permission bits and owner are kept too: a file is only
    ever linked to an inode that has the same ones (DESIGN invariant 4), so they never
    change either.
    """

    kind: int  # stat.S_IFMT(st_mode), from lstat: a symlink is a symlink
    is_symlink: bool
    content: object
    permissions: int
    uid: int
    gid: int


def pyc_content(data: bytes) -> PycContent | str:
    """The PycContent of pyc bytes, or their sha256 when this interpreter cannot load them."""
    if data[:4] == importlib.util.MAGIC_NUMBER:
        try:
            code = marshal.loads(data[16:])
        except (ValueError, EOFError, TypeError):
            pass
        else:
            return PycContent(data[:4], int.from_bytes(data[4:8], "little"), code)
    return hashlib.sha256(data).hexdigest()


def _walk(top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every path under ``top`` (not ``top`` itself), lstat'ed, never following symlinks."""
    stack = [top]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                yield Path(entry.path), st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(Path(entry.path))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(top: Path) -> dict[str, PathState]:
    """{relpath: PathState} for every path under ``top``; FIFOs and sockets are not opened."""
    states: dict[str, PathState] = {}
    for path, st in _walk(top):
        content: object
        if stat.S_ISREG(st.st_mode) and path.suffix == ".pyc":
            content = pyc_content(path.read_bytes())
        elif stat.S_ISREG(st.st_mode):
            content = file_sha256(path)
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        else:
            content = None
        states[str(path.relative_to(top))] = PathState(
            kind=stat.S_IFMT(st.st_mode),
            is_symlink=stat.S_ISLNK(st.st_mode),
            content=content,
            permissions=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
        )
    return states


def snapshot_diff(before: dict[str, PathState], after: dict[str, PathState]) -> list[str]:
    """Readable differences, so a failing assert names the paths that changed."""
    lines = [f"gone: {p}" for p in sorted(before.keys() - after.keys())]
    lines += [f"new: {p}" for p in sorted(after.keys() - before.keys())]
    lines += [
        f"changed: {p}: {before[p]} -> {after[p]}"
        for p in sorted(before.keys() & after.keys())
        if before[p] != after[p]
    ]
    return lines


def pyc_code_only(states: dict[str, PathState]) -> dict[str, PathState]:
    """The states with each pyc's flags left out: copy-on-write sharing makes timestamp pycs
    checked hash-based ones, with the same code."""
    return {
        rel: dataclasses.replace(state, content=dataclasses.replace(state.content, flags=0))
        if isinstance(state.content, PycContent)
        else state
        for rel, state in states.items()
    }


def source_of_pyc(pyc: Path) -> Path:
    """``pkg/__pycache__/mod.cpython-311.pyc`` -> ``pkg/mod.py``."""
    return pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")


def pyc_freshness(top: Path) -> dict[str, bool]:
    """{pyc relpath: whether the importer would accept it} for every timestamp pyc, and
    every checked hash-based pyc of this interpreter.

    A timestamp pyc is used only while its header holds the source's
    ``int(st_mtime) & 0xFFFFFFFF`` and size, a checked hash-based one (PEP 552) only while
    it holds the hash of the source's bytes; otherwise every import recompiles it.
    """
    fresh: dict[str, bool] = {}
    for path, st in _walk(top):
        if not (stat.S_ISREG(st.st_mode) and path.suffix == ".pyc"):
            continue
        header = path.read_bytes()[:16]
        flags = int.from_bytes(header[4:8], "little")
        source = source_of_pyc(path)
        checked_here = flags == 0b11 and header[:4] == importlib.util.MAGIC_NUMBER
        if not source.exists() or (flags != 0 and not checked_here):
            continue  # no source beside it, or a hash this interpreter cannot check
        rel = str(path.relative_to(top))
        if checked_here:
            fresh[rel] = header[8:16] == importlib.util.source_hash(source.read_bytes())
            continue
        source_st = os.stat(source)
        fresh[rel] = (
            int.from_bytes(header[8:12], "little") == int(source_st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(header[12:16], "little") == source_st.st_size & 0xFFFFFFFF
        )
    return fresh


def inode(path: Path) -> int:
    return os.lstat(path).st_ino


def inodes(top: Path) -> dict[str, tuple[int, int]]:
    """{relpath: (st_dev, st_ino)} for every regular file under ``top``."""
    return {
        str(path.relative_to(top)): (st.st_dev, st.st_ino)
        for path, st in _walk(top)
        if stat.S_ISREG(st.st_mode)
    }


@dataclass(frozen=True)
class Usage:
    allocated: int  # st_blocks * 512: what du counts and what unlinking frees
    apparent: int  # st_size


def disk_usage(*tops: Path) -> Usage:
    """Bytes of the regular files under ``tops``, each inode counted once.

    Only regular files: the store's own folders and the venvs' directories are not what
    linking reclaims, and a new shard folder must not hide a wrong figure.
    """
    seen: set[tuple[int, int]] = set()
    allocated = apparent = 0
    for top in tops:
        if not top.exists():
            continue
        for _, st in _walk(top):
            key = (st.st_dev, st.st_ino)
            if stat.S_ISREG(st.st_mode) and key not in seen:
                seen.add(key)
                allocated += st.st_blocks * 512
                apparent += st.st_size
    return Usage(allocated, apparent)


def store_content_folders(store: Path) -> list[Path]:
    """The store's folders of objects (``objects/``, and any other), not its own files.

    The store's bookkeeping (its lock and FORMAT files, its shard folders, the scan's
    memos) is overhead of having a store, not file content: it is left out when comparing
    the reclaimed bytes with the change in allocated blocks.
    """
    if not store.is_dir():
        return []
    return sorted(
        path
        for path in store.iterdir()
        if path.is_dir() and not path.is_symlink() and path.name != CACHE_DIR
    )


def store_objects(store: Path) -> dict[int, Path]:
    """{st_ino: path} of every object in the store: sources (``STORE/objects/...``) and
    shared pycs (``STORE/pyc/...``). The one listing of store objects the tests use."""
    return {
        st.st_ino: path
        for tree in ("objects", "pyc")
        if (store / tree).exists()
        for path, st in _walk(store / tree)
        if stat.S_ISREG(st.st_mode)
    }


def unused_objects(store: Path) -> dict[int, Path]:
    """The store objects no venv uses any more (link count 1): what gc removes."""
    return {ino: path for ino, path in store_objects(store).items() if os.lstat(path).st_nlink == 1}


def saving_of_objects(store: Path) -> int:
    """What the objects save, straight from the definition: an object with link count
    n >= 2 has n - 1 venv names sharing one inode, so it saves n - 2 copies."""
    total = 0
    for path in store_objects(store).values():
        st = os.lstat(path)
        if st.st_nlink >= 2:
            total += (st.st_nlink - 2) * st.st_blocks * 512
    return total


@contextmanager
def hold_lock(store: Path) -> Iterator[int]:
    """The store's lock, held by this process as another run holds it: its pid inside.

    flock locks belong to an open file description, so holding one here blocks a
    subprocess that opens STORE/lock itself, just as a second cron job would be blocked.
    The store must exist (its lock file is made with it), and the lock must be free:
    taking it does not wait, so a lock some run still holds fails the test at once.
    """
    fd = os.open(store / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield os.getpid()
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def edit_in_place(path: Path) -> None:
    """Change one byte through the path, keeping its size: as an editor writing in place
    would, it reaches every name of the inode."""
    data = path.read_bytes()
    index = data.index(b"_TABLE = (\n    '") + len(b"_TABLE = (\n    '")
    with path.open("r+b") as out:
        out.seek(index)
        out.write(b"x" if data[index : index + 1] != b"x" else b"y")
    assert path.read_bytes() != data and len(path.read_bytes()) == len(data)


def temp_leftovers(top: Path) -> list[Path]:
    return [path for path, _ in _walk(top) if path.name.startswith(TEMP_PREFIX)]


# --- the CLI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The one JSON object the CLI printed (json.loads rejects anything around it)."""
        parsed = json.loads(self.stdout)
        assert isinstance(parsed, dict), f"--json printed {type(parsed).__name__}, not an object"
        return parsed

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> CliRun:
    """``python -m dedupe ARGS`` in a subprocess, with the repo importable (and env's
    variables set).

    A timeout turns a hang (a FIFO opened for reading, a lock waited on forever) into a
    failure instead of a stuck suite.
    """
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    completed = subprocess.run(
        [sys.executable, "-m", "dedupe", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return CliRun(completed.returncode, completed.stdout, completed.stderr)


@contextmanager
def tmpfs_at(mount_point: Path, size: str) -> Iterator[None]:
    """A tmpfs mounted on the folder mount_point for the block; the test is skipped
    where that is not possible (not root, no mount(2) here)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()!r}")
    try:
        yield
    finally:
        # Lazy unmount: a process of a failed test may still hold a file open in it.
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


COW_FILESYSTEMS = ("xfs", "btrfs")
_MKFS = {
    "xfs": ["mkfs.xfs", "-q", "-m", "reflink=1"],
    "btrfs": ["mkfs.btrfs", "-q"],
    "ext4": ["mkfs.ext4", "-q", "-F", "-b", "4096"],
}


@contextmanager
def loop_filesystem_at(mount_point: Path, image: Path, kind: str) -> Iterator[None]:
    """A fresh filesystem of the kind (xfs with reflink, btrfs or ext4) in the sparse file
    image, loop-mounted on mount_point for the block; the test is skipped where that is
    not possible (not root, no mkfs, no loop device)."""
    if os.geteuid() != 0:
        pytest.skip(f"mounting a loop {kind} image needs root")
    mkfs = _MKFS[kind]
    if shutil.which(mkfs[0]) is None:
        pytest.skip(f"{mkfs[0]} is not installed")
    with open(image, "wb") as f:
        f.truncate(512 << 20)  # sparse: xfs wants at least 300 MiB
    made = subprocess.run([*mkfs, str(image)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"{mkfs[0]} failed: {made.stderr.strip()!r}")
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount a {kind} image here: {mounted.stderr.strip()!r}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        image.unlink()


def shares_blocks(a: Path, b: Path, start: int = 0) -> bool:
    """Whether two files hold their data from offset start on in the same disk blocks."""
    from dedupe import cow

    with open(a, "rb") as fa, open(b, "rb") as fb:
        return cow.same_blocks(cow.extents(fa.fileno()), cow.extents(fb.fileno()), start)


def free_bytes(path: Path) -> int:
    """The filesystem's free space after a sync: what copy-on-write sharing shows in."""
    os.sync()
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize
