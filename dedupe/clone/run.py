"""One clone from start to end: check SRC and DST, adopt SRC's files under the store's
lock, plan DST, make it under a temp name beside DST and rename it into place."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator

from ..discovery import CLONE_BUILD_MARK
from ..errors import CloneError
from ..link.sharing import SourceMoved, share_step
from ..tree import Tree
from .adopt import Adoption, adopted, find_venv
from .build import build, foreseen_bytes, measured_bytes
from .plan import Copy, Plan, Share, Write, plan_clone
from .result import CloneResult, CopiedFile
from .venvcfg import VenvConfig, base_interpreter, make_venv, parse_cfg

__all__ = ["TEMP_MARK", "clone"]

# Beside DST, the folder a clone builds in: `.DST.venv-dedupe-tmp-XXXXXXXX`. Only a rename
# makes it DST, so a clone killed at any instant leaves no half venv at DST's name (and
# discovery never takes it for a venv).
TEMP_MARK = CLONE_BUILD_MARK


def clone(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    lock_timeout: float = 0.0,
    on_lock_wait: Callable[[str], None] | None = None,
) -> CloneResult:
    """Make DST a venv of SRC's base interpreter holding every distribution of SRC, each
    file proven by the scan shared with its store object (hardlinks, or reflinks where
    the store shares by copy-on-write). With dry_run, say what it would do; change nothing.
    """
    started = time.monotonic()
    with _no_cycle_collection():
        return _clone(src, dst, store, dry_run, lock_timeout, on_lock_wait, started)


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """A clone makes some hundred thousand objects (a plan entry per file, RECORD rows),
    none in a cycle that outlives it: the cyclic collector would walk them again and again
    to free nothing (about a fifth of the plan's time on a 12,000-file venv)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _clone(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    store: str | os.PathLike[str] | None,
    dry_run: bool,
    lock_timeout: float,
    on_lock_wait: Callable[[str], None] | None,
    started: float,
) -> CloneResult:
    src_root = os.path.realpath(os.fspath(src))
    dst_path = _checked_dst(src_root, os.path.abspath(os.fspath(dst)))
    venv = find_venv(src_root)
    if os.stat(os.path.dirname(dst_path)).st_dev != venv.device:
        raise CloneError(
            f"DST {dst_path!r} is on another filesystem than SRC {src_root!r}: "
            "its files cannot share SRC's store objects"
        )
    with open(os.path.join(src_root, "pyvenv.cfg"), encoding="utf-8", errors="replace") as f:
        cfg = parse_cfg(f.read())
    base = base_interpreter(cfg)
    explicit = os.fspath(store) if store is not None else None
    with adopted(venv, explicit, dry_run, lock_timeout, on_lock_wait) as adoption:
        plan = plan_clone(venv, dst_path, adoption.shared, _aliases(src, src_root, cfg))
        if dry_run:
            with Tree(src_root) as tree:
                block = os.statvfs(os.path.dirname(dst_path)).f_bsize
                added = foreseen_bytes(plan, tree, block)
        else:
            _remove_leftovers(dst_path)
            symlinks = os.path.islink(os.path.join(src_root, "bin", "python"))
            skeleton = functools.partial(make_venv, base, cfg, final=dst_path, symlinks=symlinks)
            added = _make(plan, adoption, dst_path, skeleton)
    return _result(plan, adoption, src_root, dst_path, added, time.monotonic() - started)


def _aliases(src: str | os.PathLike[str], root: str, cfg: VenvConfig) -> tuple[str, ...]:
    """The paths of SRC's root other than its real path that its files may name: the one
    it was given as, and the one its venv was made at (pyvenv.cfg's `command`), when
    they lead to it."""
    found = [os.path.abspath(os.fspath(src))]
    if cfg.command:
        found.append(cfg.command.split()[-1])
    return tuple(
        p for p in dict.fromkeys(found) if p != root and os.path.isabs(p) and _same(p, root)
    )


def _same(path: str, root: str) -> bool:
    try:
        return os.path.samefile(path, root)
    except OSError:
        return False


def _checked_dst(src_root: str, dst: str) -> str:
    """DST's absolute path; CloneError unless it is free (absent, or an empty folder)
    in a folder that exists, and neither SRC nor inside it."""
    parent = os.path.dirname(dst)
    if not os.path.isdir(parent):
        raise CloneError(f"DST's folder {parent!r} does not exist")
    real = os.path.join(os.path.realpath(parent), os.path.basename(dst))
    if real == src_root or real.startswith(src_root + os.sep):
        raise CloneError(f"DST {dst!r} is SRC or inside it")
    if os.path.islink(dst) or (os.path.lexists(dst) and not os.path.isdir(dst)):
        raise CloneError(f"DST {dst!r} exists and is not a folder: refusing to replace it")
    if os.path.isdir(dst) and os.listdir(dst):
        raise CloneError(f"DST {dst!r} exists and is not empty: refusing to touch it")
    return real


def _remove_leftovers(dst: str) -> None:
    """Temp folders of clones to DST killed before their rename (we hold the lock)."""
    parent, name = os.path.split(dst)
    for entry in os.scandir(parent):
        if entry.name.startswith(f".{name}{TEMP_MARK}") and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def _make(plan: Plan, adoption: Adoption, dst: str, make_skeleton: Callable[[str], None]) -> int:
    parent, name = os.path.split(dst)
    temp = tempfile.mkdtemp(prefix=f".{name}{TEMP_MARK}", dir=parent)
    try:
        make_skeleton(temp)
        try:
            build(plan, adoption.venv, temp, share_step(adoption.copy_on_write))
        except SourceMoved as exc:
            raise CloneError(
                f"SRC changed during the clone ({exc}); nothing was made, try again"
            ) from None
        venv = adoption.venv
        site_packages = tuple(os.path.relpath(p, venv.root) for p in venv.site_packages)
        added = measured_bytes(plan, temp, site_packages)
        os.chmod(temp, 0o755 & ~_umask())
        # rename(2) replaces an empty folder and refuses any other: DST filled meanwhile
        # is left as it is.
        os.rename(temp, dst)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return added


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _result(
    plan: Plan, adoption: Adoption, src: str, dst: str, added: int, seconds: float
) -> CloneResult:
    scanned = adoption.result
    copies = [a for a in plan.actions if isinstance(a, Copy)]
    shares = [a for a in plan.actions if isinstance(a, Share)]
    return CloneResult(
        dry_run=scanned.dry_run,
        src=src,
        dst=dst,
        link_mode="reflink" if adoption.copy_on_write else "hardlink",
        store=adoption.store.path,
        distributions=plan.distributions,
        files_linked=sum(not a.pyc for a in shares),
        pycs_linked=sum(a.pyc for a in shares),
        files_copied=dict(sorted(Counter(a.reason.value for a in copies).items())),
        copied=tuple(CopiedFile(os.path.join(dst, a.rel), a.reason) for a in copies),
        files_written=dict(
            sorted(Counter(a.kind.value for a in plan.actions if isinstance(a, Write)).items())
        ),
        adopted=scanned.files_stored + scanned.pyc.stored,
        bytes_added=added,
        store_bytes_added=scanned.store_overhead_bytes,
        seconds=seconds,
        errors=tuple(plan.problems) + tuple(f"{p.path}: {p.error}" for p in scanned.errors),
    )
