"""Folder handles (dedupe.tree): a venv folder swapped for a symlink, at any step of any
operation or in a loop while real scans run, sends nothing outside the venv.

The attack, as a venv's owner could make it against a root cron job: rename a folder of
the venv away and put a symlink to a folder outside (here a copy with the same files, so
that an operation by path would find everything it expects there) in its place.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import TEMP_PREFIX, PathState, Venv, inodes, snapshot, snapshot_diff, tmpfs_at

from dedupe import detach, scan
from dedupe.link import steps
from dedupe.tree import At, FolderSwapped, Growth, Tree


def test_a_folder_is_reached_through_its_parents_handles(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x")
    with Tree(str(tmp_path)) as tree:
        assert tree.lstat("a/b/f").st_ino == os.lstat(tmp_path / "a" / "b" / "f").st_ino
        assert [e.name for e in tree.scandir("a/b")] == ["f"]
        assert At(tree, "a/b/f").parent() == At(tree, "a/b")


def test_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    with Tree(str(tmp_path)) as tree, pytest.raises(FolderSwapped):
        tree.fd("link")


def test_a_folder_swapped_after_its_first_open_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "other").mkdir()
    with Tree(str(tmp_path)) as tree:
        tree.fd("a")
        tree.close()  # as when the handle was evicted: the next use opens it again
        os.rename(tmp_path / "a", tmp_path / "a-moved")
        os.rename(tmp_path / "other", tmp_path / "a")  # a real folder, not a symlink
        with pytest.raises(FolderSwapped):
            tree.fd("a")


def test_a_root_that_is_not_the_folder_discovery_found_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "venv"
    root.mkdir()
    root.chmod(0o755)
    st = os.lstat(root)
    os.rename(root, tmp_path / "venv-moved")
    root.mkdir(mode=0o700)  # another real folder at the same path, as a swap above it makes
    with Tree(str(root), (st.st_dev, st.st_ino)) as tree:
        with pytest.raises(FolderSwapped):
            tree.fd("")
        os.rename(root, tmp_path / "impostor")
        os.rename(tmp_path / "venv-moved", root)  # the real one is back: nothing kept of the other
        assert tree.folder_mode("") == st.st_mode


def test_a_mount_point_inside_a_venv_is_another_filesystem_not_a_symlink(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    """A folder that is a mount point has another inode than its parent's listing
    names: its files are on another filesystem, and are counted so, never as symlinks
    and never dropped in silence."""
    a, b = pair
    data = b.file("alpha/data")
    kept = tmp_path / "kept"
    shutil.copytree(data, kept)
    with tmpfs_at(data, "8m"):
        shutil.copytree(kept, data, dirs_exist_ok=True)
        result = scan([venv_root], store=store_dir, jobs=1)
        skipped = next(v for v in result.venvs if v.path == str(b.path)).skipped
        assert skipped.get("other-filesystem") == 1 and "symlink" not in skipped, skipped
        assert result.errors == () and result.files_linked > 0


def test_handles_beyond_the_limit_are_closed_and_opened_again(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"d{i}").mkdir()
    with Tree(str(tmp_path), keep=3) as tree:
        before = len(os.listdir("/proc/self/fd"))
        for i in range(10):
            tree.lstat(f"d{i}/.")  # through d{i}'s own handle
        assert len(os.listdir("/proc/self/fd")) <= before + 3
        assert tree.lstat("d0/.").st_ino == os.lstat(tmp_path / "d0").st_ino


def _link_counts(top: Path) -> dict[str, int]:
    return {rel: os.lstat(top / rel).st_nlink for rel in inodes(top)}


class _Swap:
    """A fault hook that, at the first call of stage, moves the folder of the file acted
    on aside and puts a symlink to a decoy copy of it, outside the venvs, in its place."""

    def __init__(self, stage: str, decoy: Path, evict: bool) -> None:
        self.stage, self.decoy, self.evict = stage, decoy, evict
        self.folder: Path | None = None
        self.decoy_before: dict[str, PathState] = {}
        self.decoy_inodes: dict[str, tuple[int, int]] = {}
        self.real: dict[str, PathState] = {}

    def __call__(self, stage: str, at: At) -> None:
        if stage != self.stage or self.folder is not None:
            return
        self.folder = Path(at.path).parent
        shutil.copytree(self.folder, self.decoy, symlinks=True)
        self.decoy_before, self.decoy_inodes = snapshot(self.decoy), inodes(self.decoy)
        self.real = snapshot(self.folder)
        os.rename(self.folder, self.moved)
        os.symlink(self.decoy, self.folder)
        if self.evict:
            at.tree.close()  # the operation must open the folder again, and refuse it

    @property
    def moved(self) -> Path:
        assert self.folder is not None
        return self.folder.with_name(self.folder.name + "-moved")


@pytest.fixture
def swap_hook() -> Iterator[Callable[[_Swap], None]]:
    def install(hook: _Swap) -> None:
        steps.fault_hook = hook

    yield install
    steps.fault_hook = None


def _assert_untouched(hook: _Swap) -> None:
    """The decoy is as it was made (no name added or removed, every file private, the
    same bytes), and the venv folder moved aside still holds what it held."""
    assert hook.folder is not None, f"the {hook.stage!r} hook never ran"
    assert snapshot_diff(hook.decoy_before, snapshot(hook.decoy)) == []
    assert inodes(hook.decoy) == hook.decoy_inodes
    assert set(_link_counts(hook.decoy).values()) == {1}
    kept = {k: v for k, v in snapshot(hook.moved).items() if TEMP_PREFIX not in k}
    real = {k: v for k, v in hook.real.items() if TEMP_PREFIX not in k}
    assert snapshot_diff(real, kept) == []


SCAN_STAGES = [
    pytest.param("adopt", True, id="adopt-start"),
    pytest.param("adopted", False, id="adopt-linked"),
    pytest.param("replace", True, id="replace-start"),
    pytest.param("replace", False, id="replace-start-handle-kept"),
    pytest.param("linked", False, id="replace-temp-linked"),
    pytest.param("checked", False, id="replace-rechecked"),
    pytest.param("leftover", True, id="leftover-start"),
    pytest.param("leftover-checked", False, id="leftover-checked"),
]


@pytest.mark.parametrize(("stage", "evict"), SCAN_STAGES)
def test_a_folder_swapped_during_a_scan_redirects_nothing(
    stage: str,
    evict: bool,
    pair: tuple[Venv, ...],
    venv_root: Path,
    store_dir: Path,
    outside_dir: Path,
    swap_hook: Callable[[_Swap], None],
) -> None:
    a, b = pair
    for venv in pair:  # what a killed run leaves: a temp link beside installed files
        os.link(venv.file("alpha/util.py"), venv.file(f"alpha/{TEMP_PREFIX}left.0"))
    hook = _Swap(stage, outside_dir / "decoy", evict)
    swap_hook(hook)
    scan([venv_root], store=store_dir, jobs=1)
    _assert_untouched(hook)


@pytest.mark.parametrize(
    ("stage", "evict"),
    [pytest.param("detach", True, id="start"), pytest.param("copied", False, id="copied")],
)
def test_a_folder_swapped_during_a_detach_redirects_nothing(
    stage: str,
    evict: bool,
    pair: tuple[Venv, ...],
    venv_root: Path,
    store_dir: Path,
    outside_dir: Path,
    swap_hook: Callable[[_Swap], None],
) -> None:
    a, b = pair
    scan([venv_root], store=store_dir, jobs=1)
    hook = _Swap(stage, outside_dir / "decoy", evict)
    swap_hook(hook)
    detach([b.path], store=store_dir)
    _assert_untouched(hook)


def test_folders_swapped_in_a_loop_while_scans_and_detaches_run(
    make_venvs: Callable[..., tuple[Venv, ...]],
    venv_root: Path,
    store_dir: Path,
    outside_dir: Path,
) -> None:
    """Three folders of venv b (a package, its __pycache__, a dist-info) swapped for
    symlinks to decoy copies and back, over and over, while real scans (in worker
    processes) and detaches run: the decoys are never written, linked or read into the
    store, and b ends up with every file it had."""
    a, b = make_venvs(venv_root, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0", "beta==1.0"])
    before = snapshot(b.path)
    folders = [
        b.file("alpha"),
        b.file("alpha/__pycache__"),
        next(b.site_packages.glob("beta-*.dist-info")),
    ]
    decoys = []
    for i, folder in enumerate(folders):
        decoy = outside_dir / f"decoy{i}"
        shutil.copytree(folder, decoy, symlinks=True)
        decoys.append((decoy, snapshot(decoy), inodes(decoy)))
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for folder, (decoy, _, _) in zip(folders, decoys, strict=True):
                moved = folder.with_name(folder.name + "-moved")
                os.rename(folder, moved)
                os.symlink(decoy, folder)
                os.unlink(folder)
                os.rename(moved, folder)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for _ in range(3):
            scan([venv_root], store=store_dir, jobs=2)
            detach([b.path], store=store_dir)
    finally:
        stop.set()
        swapper.join()
    scan([venv_root], store=store_dir, jobs=2)  # with no swaps: b is shared again
    for decoy, snap, ids in decoys:
        assert snapshot_diff(snap, snapshot(decoy)) == []
        assert inodes(decoy) == ids
        assert set(_link_counts(decoy).values()) == {1}
    assert snapshot_diff(before, snapshot(b.path)) == []
    assert os.lstat(b.file("alpha/util.py")).st_ino == os.lstat(a.file("alpha/util.py")).st_ino


def test_growth_counts_the_blocks_folders_gained() -> None:
    growth = Growth()
    assert growth.bytes == 0
    growth.note("same", 8, 8)
    growth.note("grew", 8, 16)
    assert growth.bytes == 8 * 512


def test_growth_seen_by_two_processes_at_once_counts_once() -> None:
    # Two parts of pass 2 work in one folder at once: each sees the block the other's
    # temp name added; merged, the folder grew by that block, not by two.
    first, second = Growth(), Growth()
    first.note("f", 8, 16)
    second.note("f", 8, 16)
    second.note("g", 8, 8)  # unchanged while the second had it open
    first.merge(second)
    assert first.bytes == 8 * 512


def test_growth_spans_every_window_a_folder_was_open_in() -> None:
    # A folder evicted and opened again: the growth of both windows, and a window that
    # saw no change still counts once the folder is known to have grown.
    growth = Growth()
    growth.note("f", 8, 16)
    growth.note("f", 16, 16)
    growth.note("f", 16, 24)
    assert growth.bytes == 16 * 512
