"""A scan reads the venvs without moving their access times (dedupe.quiet)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import MakeVenvs, inode

from dedupe import scan
from dedupe.quiet import open_quietly

DAY_NS = 86_400 * 10**9


def _age(top: Path) -> dict[tuple[int, int], tuple[str, int]]:
    """Give every file and folder under top (top included) an atime two days before its
    mtime, as a venv installed long ago and not used since has; (path, atime) by inode."""
    for path in reversed(_quiet_walk(top)):  # a folder after what it holds
        st = os.lstat(path)
        os.utime(path, ns=(st.st_mtime_ns - 2 * DAY_NS, st.st_mtime_ns), follow_symlinks=False)
    return _atimes(top)


def _atimes(top: Path) -> dict[tuple[int, int], tuple[str, int]]:
    found = {}
    for path in _quiet_walk(top):
        st = os.lstat(path)
        found[st.st_dev, st.st_ino] = (path, st.st_atime_ns)
    return found


def _quiet_walk(top: Path) -> list[str]:
    """top and every path under it, folders listed without moving their atimes (the
    test's own listing would hide the scan's)."""
    found, todo = [], [str(top)]
    while todo:
        path = todo.pop()
        found.append(path)
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            continue  # a symlink is not followed: that too would move its atime
        fd = open_quietly(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            todo += [os.path.join(path, e.name) for e in os.scandir(fd)]
        finally:
            os.close(fd)
    return found


@pytest.fixture
def atimes_move(tmp_path: Path) -> None:
    """Skip where reading a file does not move an old atime (a noatime mount)."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    ((_path, before),) = _age(probe).values()
    probe.read_bytes()
    if probe.stat().st_atime_ns == before:
        pytest.skip(f"{tmp_path} is mounted without atime updates: nothing to keep")


def test_a_scan_moves_no_atime_in_the_venvs(
    atimes_move: None, make_venvs: MakeVenvs, venv_root: Path, store_dir: Path
) -> None:
    """Pass 1 reads RECORDs, pyvenv.cfg and WHEEL files and lists every folder; pass 2
    proves each file it links by reading it: none of it shows in a file's or a folder's
    atime. (A symlink's moves when it is followed, bin/python's say: no flag keeps it.)"""
    a, b = make_venvs(venv_root, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0", "beta==1.0"])
    core = [venv.site_packages / "alpha" / "core.py" for venv in (a, b)]  # globs lib/
    before = _age(venv_root)

    result = scan([venv_root], store=store_dir)

    # A linked name is another name of the object's inode now: each inode is compared.
    after = _atimes(venv_root)
    moved = [
        path
        for ident, (path, atime) in sorted(after.items())
        if before[ident][1] != atime and not os.path.islink(path)
    ]
    assert not moved, "\n".join(moved)
    assert len(after) < len(before)  # the replaced inodes are gone
    assert result.files_linked > 0 and result.errors == ()
    assert inode(core[0]) == inode(core[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to open as another user")
def test_anothers_file_is_opened_without_the_flag(tmp_path: Path) -> None:
    """The kernel refuses O_NOATIME on a file of another owner (EPERM): such a file is
    read all the same, as any reader may. One it may not read is refused as before."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o755)
    for name, mode in (("public", 0o644), ("private", 0o600)):
        (folder / name).write_bytes(f"{name} bytes".encode())
        (folder / name).chmod(mode)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nobody, with the folder's handle; it never returns to pytest
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, repr(_opened_as_nobody(dir_fd)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        said = f.read()
    os.waitpid(pid, 0)
    os.close(dir_fd)
    assert said == repr(["public bytes", errno.EPERM, errno.EACCES])


def _opened_as_nobody(dir_fd: int) -> list[object]:
    """What open_quietly gives of a file of root's, readable by all; the error the flag
    alone gives on it; and the error of one that only root may read."""
    fd = open_quietly("public", os.O_RDONLY, dir_fd)
    found: list[object] = [os.read(fd, 100).decode()]
    attempts: list[Callable[[], int]] = [
        lambda: os.open("public", os.O_RDONLY | os.O_NOATIME, dir_fd=dir_fd),
        lambda: open_quietly("private", os.O_RDONLY, dir_fd),
    ]
    for attempt in attempts:
        try:
            attempt()
        except PermissionError as exc:
            found.append(exc.errno)
    return found
