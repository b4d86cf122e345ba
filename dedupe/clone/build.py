"""Carrying out a clone's plan: the only module that writes DST's files (into the temp
folder that becomes DST), and what they add to the disk, measured or, for a dry run,
foreseen from SRC's own files."""

from __future__ import annotations

import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..discovery import Venv
from ..link.sharing import ShareStep
from ..quiet import open_quietly
from ..tree import Tree, split, venv_tree
from .plan import Action, Copy, Plan, Share, Write

__all__ = ["build", "foreseen_bytes", "measured_bytes"]

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 24


def build(plan: Plan, venv: Venv, temp: str, step: ShareStep, workers: int | None = None) -> None:
    """Make every folder and file of the plan in temp (a venv made by dedupe.clone.venvcfg),
    reading SRC (venv) through folder handles of its own in each worker thread.

    Half of the time is the kernel's (a mkdir and a link per folder and file, without the
    GIL), so the tree is cut into parts (each folder four levels down, say one top-level
    package of site-packages, with all below it) that two threads can make side by side,
    after the few folders above them. workers: None for two when a CPU is idle, else
    one (on a busy machine the second thread only costs GIL hand-overs)."""
    if workers is None:
        workers = _idle_workers()
    mask = _umask()
    parts: dict[str, _Part] = {}
    top: list[tuple[str, int]] = []
    for rel, mode in sorted(plan.folders.items()):
        key = _part_key(rel)
        if key is None:
            top.append((rel, stat.S_IMODE(mode)))
        else:
            parts.setdefault(key, _Part()).folders.append((rel, stat.S_IMODE(mode)))
    for action in plan.actions:
        key = _part_key(split(action.rel)[0]) or ""
        parts.setdefault(key, _Part()).actions.append(action)
    for part in parts.values():
        # A folder's files together: each SRC folder's handle is opened once, not again
        # for its pycs (planned last) after the handle cache let it go.
        part.actions.sort(key=lambda action: split(action.rel)[0])
    _folders(temp, top, mask)
    # The biggest parts first, so that no thread is left with a big one at the end.
    ordered = sorted(parts.values(), key=lambda p: -(len(p.folders) + len(p.actions)))
    local = threading.local()
    trees: list[Tree] = []
    stop = threading.Event()  # set by the first part that fails: the others end early

    def make(part: _Part) -> None:
        if stop.is_set():
            return
        tree: Tree | None = getattr(local, "tree", None)
        if tree is None:
            tree = local.tree = venv_tree(venv)
            trees.append(tree)
        _folders(temp, part.folders, mask)
        for action in part.actions:
            if stop.is_set():
                return
            path = f"{temp}/{action.rel}"
            try:
                _make(action, tree, path, step)
            except FileExistsError:
                os.unlink(path)  # a name the venv module made too (a dist's own bin/activate)
                _make(action, tree, path, step)

    try:
        if workers <= 1 or len(ordered) < 2:
            for part in ordered:
                make(part)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(make, part) for part in ordered]
            try:
                for future in futures:
                    future.result()  # the first error (SourceMoved, OSError) stops the clone
            except BaseException:
                stop.set()
                raise
    finally:
        for tree in trees:
            tree.close()


def _idle_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1
    return 2 if cpus >= 2 and load <= cpus - 1 else 1


@dataclass(slots=True)
class _Part:
    folders: list[tuple[str, int]] = field(default_factory=list)  # (rel, mode), parents first
    actions: list[Action] = field(default_factory=list)


def _part_key(folder: str) -> str | None:
    """The part a folder is made in: its first four levels (a folder above that is made
    before any part, so that each part's folders hang from folders that exist)."""
    parts = folder.split("/", 4)
    return None if len(parts) < 4 or not folder else "/".join(parts[:4])


def _folders(temp: str, folders: list[tuple[str, int]], mask: int) -> None:
    """Make each folder with SRC's mode; those the venv module made already get it too."""
    for rel, mode in folders:
        path = f"{temp}/{rel}"
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            os.chmod(path, mode)
            continue
        if mode & mask:
            os.chmod(path, mode)  # the umask narrowed it


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make(action: Action, tree: Tree, path: str, step: ShareStep) -> None:
    if isinstance(action, Share):
        folder, name = split(action.rel)
        step.share(tree.fd(folder), name, path, action.ino, action.st)
    elif isinstance(action, Copy):
        _copy(tree, action, path)
    elif isinstance(action, Write):
        _write(path, action)
    else:
        os.symlink(action.target, path)


def _copy(tree: Tree, action: Copy, path: str) -> None:
    """A private copy with SRC's mode and mtime (so the pycs valid for SRC's file are
    valid for it), of the bytes SRC holds now."""
    folder, name = split(action.rel)
    src = open_quietly(name, _READ, tree.fd(folder))
    try:
        st = os.fstat(src)
        out = os.open(path, _CREATE, 0o600)
        try:
            left = st.st_size
            while left > 0:
                sent = os.copy_file_range(src, out, min(left, _CHUNK))
                if sent == 0:
                    break
                left -= sent
            os.fchmod(out, stat.S_IMODE(st.st_mode))
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(out)
    finally:
        os.close(src)


def _write(path: str, action: Write) -> None:
    fd = os.open(path, _CREATE, 0o600)
    try:
        view = memoryview(action.data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, action.mode)
        if action.mtime_ns is not None:
            os.utime(fd, ns=(action.mtime_ns, action.mtime_ns))
    finally:
        os.close(fd)


def measured_bytes(plan: Plan, top: str, site_packages: tuple[str, ...]) -> int:
    """Allocated bytes of everything under top that is not shared: its folders, the venv
    module's files, and each file copied or written. The site-packages folders
    (venv-relative) hold only what the plan made there: their files are not listed again."""
    rels = {a.rel for a in plan.actions if not isinstance(a, Share)} | set(plan.folders)
    for folder, dirs, files in os.walk(top):
        rel = os.path.relpath(folder, top)
        rel = "" if rel == "." else rel
        rels.add(rel)
        if rel in site_packages:
            dirs[:] = []
            continue
        rels.update(f"{rel}/{name}" if rel else name for name in dirs + files)
    shared = {a.rel for a in plan.actions if isinstance(a, Share)}
    total = 0
    for rel in rels - shared:
        total += os.lstat(os.path.join(top, rel)).st_blocks * 512
    return total


def foreseen_bytes(plan: Plan, tree: Tree, block: int) -> int:
    """What measured_bytes will give, foreseen without writing: each copy takes the
    blocks SRC's file takes, each written file its size in whole blocks, and the folders
    and the venv module's files (pyvenv.cfg, activate scripts) what SRC's own take."""
    total = 0
    for action in plan.actions:
        if isinstance(action, Copy):
            total += action.st.st_blocks * 512
        elif isinstance(action, Write):
            total += -(-len(action.data) // block) * block
    folders = set(plan.folders) | {"", "bin", "include", "lib"}
    for rel in folders:
        try:
            total += tree.lstat(rel).st_blocks * 512
        except OSError:
            continue
    planned = {a.rel for a in plan.actions}
    for rel in ["pyvenv.cfg"] + [f"bin/{e.name}" for e in tree.scandir("bin")]:
        if rel in planned:
            continue
        try:
            st = tree.lstat(rel)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            total += st.st_blocks * 512
    return total
