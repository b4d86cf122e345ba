"""pip keeps working on deduplicated venvs without harming the venvs that share its files.

pip replaces and removes files by unlink and rename, never by writing through the path,
so uninstalling or upgrading in one venv must leave the shared inode, the other venvs
and the store objects exactly as they were.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import (
    MakeVenvs,
    file_sha256,
    inodes,
    pip,
    pip_install,
    run_console_script,
    run_python,
    snapshot,
    snapshot_diff,
    store_objects,
    wheel_files,
)

from dedupe import scan

ALPHA_FILES = (
    "alpha/__init__.py",
    "alpha/core.py",
    "alpha/util.py",
    "alpha/cli.py",
    "alpha/data/table.csv",
)


def test_uninstall_and_upgrade_after_scan_leave_other_venvs_and_store_intact(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, wheelhouse: Path
) -> None:
    a, b, c = make_venvs(
        venv_root, a=["alpha==1.0"], b=["alpha==1.0"], c=["alpha==1.0", "beta==1.0"]
    )
    scan([venv_root], store=store_dir)
    assert all(os.lstat(c.file(f)).st_nlink == 4 for f in ALPHA_FILES), "precondition: shared"

    c_before, c_inodes_before = snapshot(c.path), inodes(c.path)
    objects_before = {path: file_sha256(path) for path in store_objects(store_dir).values()}

    pip(a, "uninstall", "-y", "-q", "alpha")
    pip_install(b, wheelhouse, "--upgrade", "alpha==2.0")

    # C: every path as it was, on the same inodes, and still working.
    assert snapshot_diff(c_before, snapshot(c.path)) == []
    assert inodes(c.path) == c_inodes_before
    assert run_console_script(c, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]
    assert run_python(c, "import beta.engine; print(beta.engine.run())").strip() == "43"
    # The store: the same objects with the same bytes.
    assert {path: file_sha256(path) for path in store_objects(store_dir).values()} == (
        objects_before
    )
    # A's and B's links are gone from the shared inodes: C and the store remain.
    for relpath in ALPHA_FILES:
        assert os.lstat(c.file(relpath)).st_nlink == 2, relpath

    # A lost alpha, B has 2.0 and works.
    assert not a.file("alpha").exists()
    assert run_console_script(b, "alpha-cli").split() == ["alpha-cli", "2.0", "42", "42"]


def test_rescan_after_upgrade_shares_the_new_files(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, wheelhouse: Path
) -> None:
    b, c = make_venvs(venv_root, b=["alpha==1.0"], c=["alpha==1.0"])
    scan([venv_root], store=store_dir)
    pip_install(b, wheelhouse, "--upgrade", "alpha==2.0")
    # pip wrote a new inode for util.py, the same bytes in 1.0 and 2.0.
    assert os.lstat(b.file("alpha/util.py")).st_ino != os.lstat(c.file("alpha/util.py")).st_ino

    before = snapshot(venv_root)
    result = scan([venv_root], store=store_dir)

    assert snapshot_diff(before, snapshot(venv_root)) == []
    for relpath in ("alpha/util.py", "alpha/data/table.csv"):
        assert os.lstat(b.file(relpath)).st_ino == os.lstat(c.file(relpath)).st_ino, relpath
    # Linked: the files of alpha 2.0 with the bytes of one of alpha 1.0's, whose store
    # objects c still uses: util.py, table.csv, WHEEL and entry_points.txt. 2.0's other
    # files have no copy anywhere.
    one, two = (wheel_files(wheelhouse, f"alpha=={v}") for v in ("1.0", "2.0"))
    same_in_both = [path for path, data in two.items() if data and data in one.values()]
    assert sorted(same_in_both) == [
        "alpha-2.0.dist-info/WHEEL",
        "alpha-2.0.dist-info/entry_points.txt",
        "alpha/data/table.csv",
        "alpha/util.py",
    ]
    assert (result.files_linked, result.files_stored) == (len(same_in_both), 0)
    assert run_console_script(b, "alpha-cli").split() == ["alpha-cli", "2.0", "42", "42"]
