"""Tests for dedupe.link's Unlinker: replaced files leave their venv folders at once, and
one that cannot be freed is reported by the venv file it was."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from helpers import TEMP_PREFIX, Venv, temp_leftovers

from dedupe import scan
from dedupe.link import Unlinker, steps
from dedupe.tree import At


@contextmanager
def unremovable(folder: Path) -> Iterator[None]:
    """No name can be added to folder or removed from it, as a read-only mount, an
    immutable folder or another's folder refuses: chattr +i as root (whom modes do not
    stop), mode 0o555 otherwise. Skips where it cannot be arranged."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if not shutil.which("chattr"):
        pytest.skip("root ignores modes, and chattr is not installed to make a folder immutable")
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"root ignores modes, and chattr +i failed here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def open_folder(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_a_file_with_other_names_is_unlinked_before_the_call_returns(tmp_path: Path) -> None:
    """Freeing nothing, it is not deferred: its other names must show their new link
    count and ctime before the scan stats them."""
    first, other = tmp_path / "first", tmp_path / "other"
    first.write_bytes(b"x" * 5000)
    os.link(first, other)
    unlinker = Unlinker(str(tmp_path / "trash"))
    folder = open_folder(tmp_path)
    try:
        unlinker(folder, first.name, os.lstat(first), "venv/lib/first")
        assert not first.exists()
        assert os.lstat(other).st_nlink == 1
    finally:
        unlinker.close()
        os.close(folder)


def test_a_last_name_leaves_its_folder_at_once_and_is_gone_after_close(tmp_path: Path) -> None:
    folder, trash = tmp_path / "venv-folder", tmp_path / "store" / "trash"
    folder.mkdir()
    files = [folder / f"{TEMP_PREFIX}{i}" for i in range(50)]
    for path in files:
        path.write_bytes(os.urandom(5000))
    unlinker = Unlinker(str(trash))
    fd = open_folder(folder)
    for i, path in enumerate(files):
        unlinker(fd, path.name, os.lstat(path), f"venv/lib/file-{i}.py")
        assert not path.exists()  # the venv folder never holds waiting files
    unlinker.close()
    os.close(fd)
    assert list(folder.iterdir()) == [] and list(trash.iterdir()) == []
    assert unlinker.failures == []


def test_a_copy_that_cannot_leave_its_folder_is_reported_by_its_venv_file(
    tmp_path: Path,
) -> None:
    """A file with other names is unlinked in place; where its folder refuses, the
    failure names the venv file and where its copy stays, and nothing raises."""
    folder = tmp_path / "venv-folder"
    folder.mkdir()
    copy, other = folder / f"{TEMP_PREFIX}0", tmp_path / "other-name"
    copy.write_bytes(b"x" * 5000)
    os.link(copy, other)
    shown = str(folder / "util.py")
    unlinker = Unlinker(str(tmp_path / "store" / "trash"))
    fd = open_folder(folder)
    try:
        with unremovable(folder):
            unlinker(fd, copy.name, os.lstat(copy), shown)
        unlinker.close()
    finally:
        os.close(fd)

    ((path, message),) = unlinker.failures
    assert path == shown
    assert f"left beside it as {copy.name!r}" in message, message
    assert os.lstat(copy).st_nlink == 2  # still there, for the next run to remove


def test_a_copy_that_cannot_be_freed_in_the_trash_is_reported_by_its_venv_file(
    tmp_path: Path,
) -> None:
    """The last name went to the trash, and the thread that frees it there fails."""
    folder, trash = tmp_path / "venv-folder", tmp_path / "store" / "trash"
    folder.mkdir()
    copy = folder / f"{TEMP_PREFIX}0"
    copy.write_bytes(b"x" * 5000)
    shown = str(folder / "util.py")
    unlinker = Unlinker(str(trash))
    fd = open_folder(folder)
    try:
        unlinker(fd, copy.name, os.lstat(copy), shown)
    finally:
        os.close(fd)
    binned = trash / copy.name
    assert not copy.exists() and binned.exists()
    # Fewer than a batch: the threads are handed it only by close().
    with unremovable(trash):
        unlinker.close()

    ((path, message),) = unlinker.failures
    assert path == shown
    where = f"left at {str(binned)!r} for the next run to remove: "
    assert message.startswith(f"cannot free its replaced copy, {where}"), message
    assert binned.exists()


def test_a_scan_names_the_venv_file_whose_replaced_copy_it_could_not_free(
    pair: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """Right after the first replace its displaced copy waits in the trash, and the trash
    becomes unremovable: that copy cannot be freed (the later ones, refused by the trash,
    are unlinked in place). The error names the venv file; the next run frees the copy."""
    trash = store_dir / "trash"
    first: list[str] = []

    def freeze_trash(stage: str, at: At) -> None:
        if stage == "renamed" and not first:
            first.append(at.path)
            stack.enter_context(unremovable(trash))

    with ExitStack() as stack:
        steps.fault_hook = freeze_trash
        try:
            result = scan([venv_root], store=store_dir, jobs=1)  # the hook runs here
        finally:
            steps.fault_hook = None

    assert first, "nothing was replaced"
    assert [p.path for p in result.errors] == first, result.errors
    assert result.files_linked > 1  # the files after it were linked all the same
    (left,) = trash.iterdir()
    assert left.name.startswith(TEMP_PREFIX)
    rerun = scan([venv_root], store=store_dir, jobs=1)
    assert (rerun.errors, rerun.files_linked) == ((), 0), rerun
    assert list(trash.iterdir()) == [] and temp_leftovers(venv_root) == []
