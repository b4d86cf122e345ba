"""The planner's proof rules, on real venvs: what may be linked to a store object."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import MakeVenvs, Venv, file_sha256

from dedupe import link, scan
from dedupe.tree import At


@pytest.fixture
def four(make_venvs: MakeVenvs, venv_root: Path) -> tuple[Venv, ...]:
    return make_venvs(venv_root, **{n: ["alpha==1.0"] for n in "abcd"})


@pytest.fixture
def hook() -> Iterator[None]:
    yield
    link.fault_hook = None


def test_an_object_edited_in_place_during_the_run_is_not_linked_to_again(
    four: tuple[Venv, ...], venv_root: Path, store_dir: Path, hook: None
) -> None:
    """A write through one venv's name (Vim with backupcopy, open(path, "a")) reaches the
    shared inode: later venvs of the same run must keep their own, pristine file."""
    a, b, c, d = four
    pristine = file_sha256(d.file("alpha/util.py"))
    done: list[str] = []

    def edit_after_first_link(stage: str, at: At) -> None:
        # After b's util.py became a link to the object (a's inode), append to it.
        if (
            stage == "renamed"
            and not done
            and os.path.samefile(a.file("alpha/util.py"), b.file("alpha/util.py"))
        ):
            with open(b.file("alpha/util.py"), "a") as f:
                f.write("\nprint('edited in b')\n")
            done.append("edited")

    link.fault_hook = edit_after_first_link
    result = scan([venv_root], store=store_dir, jobs=1)  # `done` lives in this process

    assert done
    for venv in (c, d):
        path = venv.file("alpha/util.py")
        assert file_sha256(path) == pristine
        assert os.stat(path).st_nlink == 1
    assert result.skipped.get("store-object-damaged", 0) >= 2
    assert any("edited in place" in p.error for p in result.errors)


def test_files_whose_extended_attributes_differ_are_not_linked(
    four: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """An ACL or a security label lives on the inode like the mode does."""
    a, b, c, d = four
    try:
        os.setxattr(c.file("alpha/util.py"), "user.venv-dedupe-test", b"c's own")
    except OSError as exc:
        pytest.skip(f"no user xattrs on this filesystem: {exc}")

    result = scan([venv_root], store=store_dir)

    util = {v: os.stat(v.file("alpha/util.py")) for v in four}
    assert util[a].st_ino == util[b].st_ino == util[d].st_ino
    assert util[c].st_ino != util[a].st_ino and util[c].st_nlink == 1
    assert os.getxattr(c.file("alpha/util.py"), "user.venv-dedupe-test") == b"c's own"
    assert os.listxattr(a.file("alpha/util.py")) == []
    assert result.skipped.get("xattrs-differ") == 1


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"), reason="chattr +i needs root")
def test_a_source_whose_pycache_cannot_be_written_is_not_linked(
    four: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """Linking it would leave its pycs stale, recompiled on every import."""
    a, b, c, d = four
    pycache = d.file("alpha/__pycache__")
    pycs = {p: (p.stat().st_ino, p.read_bytes()) for p in pycache.iterdir()}
    made = subprocess.run(["chattr", "+i", str(pycache)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i failed here: {made.stderr!r}")
    try:
        result = scan([venv_root], store=store_dir)
    finally:
        subprocess.run(["chattr", "-i", str(pycache)], check=True)

    assert result.skipped.get("pycache-read-only", 0) >= 3  # each .py of the package
    assert os.stat(d.file("alpha/util.py")).st_nlink == 1
    assert {p: (p.stat().st_ino, p.read_bytes()) for p in pycache.iterdir()} == pycs
    assert os.stat(c.file("alpha/util.py")).st_nlink == 4
