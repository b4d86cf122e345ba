"""venv-dedupe clone: a real venv of SRC's interpreter at DST, every proven file shared with
its store object, per-install files made for DST, and DST whole or absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    REPO_ROOT,
    MakeVenv,
    Venv,
    edit_in_place,
    hold_lock,
    pip,
    pip_install,
    run_cli,
    run_console_script,
    run_python,
    snapshot,
    snapshot_diff,
    store_objects,
)

from dedupe import StoreLockedError, scan
from dedupe.clone import CloneResult, CopyReason, clone
from dedupe.clone.run import TEMP_MARK
from dedupe.errors import CloneError

ALPHA_SOURCES = ("alpha/__init__.py", "alpha/core.py", "alpha/util.py", "alpha/cli.py")
ALPHA_FILES = (*ALPHA_SOURCES, "alpha/data/table.csv")


@pytest.fixture
def src(make_venv: MakeVenv, venv_root: Path) -> Venv:
    return make_venv(venv_root / "src", "alpha==1.0", "beta==1.0")


def _cfg(venv: Path) -> dict[str, str]:
    lines = (venv / "pyvenv.cfg").read_text().splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in lines)}


def _text_files(top: Path) -> dict[Path, bytes]:
    """Every regular file under top but pycs (which hold their source's compiled path)."""
    found = {}
    for folder, _dirs, files in os.walk(top):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink() and path.suffix != ".pyc":
                found[path] = path.read_bytes()
    return found


def test_dst_is_a_venv_of_srcs_interpreter_that_names_dst(
    src: Venv, venv_root: Path, store_dir: Path
) -> None:
    dst = Venv(venv_root / "dst")
    clone(src.path, dst.path, store=store_dir)

    for key in ("home", "version", "executable", "include-system-site-packages"):
        assert _cfg(dst.path)[key] == _cfg(src.path)[key]
    base = _cfg(src.path)["executable"]
    assert _cfg(dst.path)["command"] == f"{base} -m venv --without-pip {dst.path}"
    assert os.path.realpath(dst.python) == os.path.realpath(src.python)
    assert run_python(dst, "import sys; print(sys.prefix)").strip() == str(dst.path)
    assert f'VIRTUAL_ENV="{dst.path}"' in (dst.bin / "activate").read_text()
    assert "(dst) " in (dst.bin / "activate").read_text()
    for path, data in _text_files(dst.path).items():
        assert str(src.path).encode() not in data, path
        assert TEMP_MARK.encode() not in data, path
    assert [p.name for p in venv_root.iterdir() if TEMP_MARK in p.name] == []


def test_another_base_interpreter_makes_dst_by_its_own_venv_module(
    src: Venv, venv_root: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When SRC's base interpreter is not the one running the clone, `base -m venv` makes
    DST's venv in a child process: the same venv, naming DST."""
    import dedupe.clone.venvcfg as venvcfg

    monkeypatch.setattr(venvcfg, "_is_our_base", lambda base: False)
    dst = Venv(venv_root / "dst")
    clone(src.path, dst.path, store=store_dir)
    base = _cfg(src.path)["executable"]
    assert _cfg(dst.path)["command"] == f"{base} -m venv --without-pip {dst.path}"
    assert f'VIRTUAL_ENV="{dst.path}"' in (dst.bin / "activate").read_text()
    for path, data in _text_files(dst.path).items():
        assert TEMP_MARK.encode() not in data, path
    assert run_console_script(dst, "alpha-cli").split()[0] == "alpha-cli"


def test_srcs_venv_options_are_dsts(wheelhouse: Path, venv_root: Path, store_dir: Path) -> None:
    path = venv_root / "src"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
         "--prompt", "my env", str(path)],
        check=True,
    )  # fmt: skip
    src = Venv(path)
    pip_install(src, wheelhouse, "alpha==1.0")
    dst = Venv(venv_root / "dst")
    clone(src.path, dst.path, store=store_dir)

    assert _cfg(dst.path)["include-system-site-packages"] == "true"
    assert _cfg(dst.path)["prompt"] == "'my env'"
    assert "(my env) " in (dst.bin / "activate").read_text()
    assert run_python(dst, "import sys; print(sys.flags.no_site, len(sys.path) > 0)")


def test_every_proven_file_is_its_store_object_in_src_and_dst(
    src: Venv, venv_root: Path, store_dir: Path
) -> None:
    dst = Venv(venv_root / "dst")
    result = clone(src.path, dst.path, store=store_dir)

    objects = store_objects(store_dir)
    for relpath in (*ALPHA_FILES, "beta/engine.py"):
        st = os.lstat(dst.file(relpath))
        assert st.st_ino == os.lstat(src.file(relpath)).st_ino, relpath
        assert st.st_ino in objects and st.st_nlink == 3, relpath  # SRC, the store, DST
    assert result.files_linked == 12  # alpha: 5 + METADATA, WHEEL, entry_points; beta: 2 + 2
    assert result.adopted > 0 and not result.dry_run
    assert run_python(dst, "import beta.engine; print(beta.engine.run())").strip() == "43"


def test_per_install_files_are_made_for_dst(src: Venv, venv_root: Path, store_dir: Path) -> None:
    dst = Venv(venv_root / "dst")
    result = clone(src.path, dst.path, store=store_dir)

    script = (dst.bin / "alpha-cli").read_bytes()
    assert script.startswith(f"#!{dst.path}/bin/python".encode())
    assert script.split(b"\n", 1)[1] == (src.bin / "alpha-cli").read_bytes().split(b"\n", 1)[1]
    assert run_console_script(dst, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]
    for name in ("INSTALLER", "REQUESTED"):
        info = "alpha-1.0.dist-info"
        assert dst.file(f"{info}/{name}").read_bytes() == src.file(f"{info}/{name}").read_bytes()
        assert os.lstat(dst.file(f"{info}/{name}")).st_nlink == 1
    # RECORD: the script's line holds the hash and size of DST's script.
    lines = dst.record("alpha-1.0.dist-info").read_text().splitlines()
    (line,) = [x for x in lines if x.startswith("../../../bin/alpha-cli,")]
    assert line.endswith(f",{len(script)}")
    assert result.files_written == {"record": 2, "script": 1}
    assert result.files_copied == {"per-install": 4, "zero-bytes": 1}
    # pip reads DST as the venv it is.
    assert pip(dst, "check").strip() == "No broken requirements found."
    assert _pip_list(dst) == _pip_list(src)


def _pip_list(venv: Venv) -> list[dict[str, str]]:
    listed: list[dict[str, str]] = json.loads(pip(venv, "list", "--format", "json"))
    return listed


def test_a_file_edited_in_src_is_copied_with_its_reason(
    src: Venv, venv_root: Path, store_dir: Path
) -> None:
    edit_in_place(src.file("alpha/core.py"))
    dst = Venv(venv_root / "dst")
    result = clone(src.path, dst.path, store=store_dir)

    edited = str(dst.file("alpha/core.py"))
    assert (edited, CopyReason.CHANGED_SINCE_INSTALL) in [(c.path, c.reason) for c in result.copied]
    assert result.files_copied["changed-since-install"] == 1
    st = os.lstat(dst.file("alpha/core.py"))
    assert st.st_nlink == 1 and st.st_ino != os.lstat(src.file("alpha/core.py")).st_ino
    assert dst.file("alpha/core.py").read_bytes() == src.file("alpha/core.py").read_bytes()
    assert os.lstat(src.file("alpha/core.py")).st_nlink == 1  # never adopted


def test_src_changes_only_by_adoption(src: Venv, venv_root: Path, store_dir: Path) -> None:
    before = snapshot(src.path)
    clone(src.path, venv_root / "dst", store=store_dir)
    assert snapshot_diff(before, snapshot(src.path)) == []


@pytest.mark.parametrize("kind", ["file", "full-folder", "symlink"])
def test_a_dst_that_is_not_free_is_refused(
    src: Venv, venv_root: Path, store_dir: Path, kind: str
) -> None:
    dst = venv_root / "dst"
    if kind == "file":
        dst.write_text("mine")
    elif kind == "full-folder":
        dst.mkdir()
        (dst / "notes.txt").write_text("mine")
    else:
        (venv_root / "elsewhere").mkdir()
        dst.symlink_to(venv_root / "elsewhere")
    before = snapshot(venv_root)

    run = run_cli("clone", "--store", str(store_dir), str(src.path), str(dst))

    assert run.returncode == 2, run
    assert "DST" in run.stderr and str(dst) in run.stderr
    assert snapshot_diff(before, snapshot(venv_root)) == []
    assert not store_dir.exists()  # refused before anything was adopted


def test_an_empty_dst_folder_is_filled(src: Venv, venv_root: Path, store_dir: Path) -> None:
    dst = venv_root / "dst"
    dst.mkdir()
    run = run_cli("clone", "--json", "--store", str(store_dir), str(src.path), str(dst))
    assert run.returncode == 0, run
    data = run.json()
    assert data["dst"] == str(dst) and data["files_linked"] == 12
    assert {"path": str(dst / "bin" / "alpha-cli"), "reason": "per-install"} not in data["copied"]
    assert data["bytes_added"] > 0 and data["seconds"] > 0
    assert run_console_script(Venv(dst), "alpha-cli").split()[0] == "alpha-cli"


def test_the_text_report_says_what_was_linked_copied_and_added(
    src: Venv, venv_root: Path, store_dir: Path
) -> None:
    edit_in_place(src.file("alpha/util.py"))
    dst = venv_root / "dst"
    dry = run_cli("clone", "--dry-run", "--store", str(store_dir), str(src.path), str(dst))
    assert dry.returncode == 0, dry
    assert dry.stdout.startswith("venv-dedupe clone (dry run: nothing was changed)\n")
    assert "would link: 11 file(s)" in dry.stdout and not dst.exists()
    run = run_cli("clone", "--store", str(store_dir), str(src.path), str(dst))
    assert run.returncode == 0, run
    assert "\n  link: 11 file(s) and " in run.stdout
    assert "changed since install (bytes differ from RECORD)" in run.stdout
    assert f"{dst}/lib/" in run.stdout and ": changed-since-install" in run.stdout
    assert "added to the disk: " in run.stdout and "time: " in run.stdout


def test_a_src_that_is_no_venv_is_refused(venv_root: Path, store_dir: Path) -> None:
    (venv_root / "plain").mkdir()
    plain, dst = venv_root / "plain", venv_root / "d"
    run = run_cli("clone", "--store", str(store_dir), str(plain), str(dst))
    assert run.returncode == 2 and "not a venv" in run.stderr, run
    assert not (venv_root / "d").exists()


def test_a_held_store_lock_stops_the_clone_before_anything(
    src: Venv, venv_root: Path, store_dir: Path
) -> None:
    clone(src.path, venv_root / "first", store=store_dir)  # makes the store
    before = snapshot(src.path)
    with hold_lock(store_dir), pytest.raises(StoreLockedError):
        clone(src.path, venv_root / "dst", store=store_dir)
    assert not (venv_root / "dst").exists()
    assert snapshot_diff(before, snapshot(src.path)) == []


def test_the_store_lock_is_held_while_dst_is_made(
    src: Venv, venv_root: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedupe.clone.run as run_module

    tried: list[bool] = []
    real_build = run_module.build

    def build_and_try_the_lock(*args: object) -> None:
        try:
            with hold_lock(store_dir):
                tried.append(False)
        except BlockingIOError:
            tried.append(True)
        real_build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module, "build", build_and_try_the_lock)
    clone(src.path, venv_root / "dst", store=store_dir)
    assert tried == [True]


def _figures(result: CloneResult) -> tuple[object, ...]:
    return (
        result.distributions,
        result.files_linked,
        result.pycs_linked,
        result.files_copied,
        result.files_written,
        result.adopted,
        [(os.path.relpath(c.path, result.dst), c.reason) for c in result.copied],
    )


def test_the_dry_run_changes_nothing_and_foresees_the_real_run(
    src: Venv, venv_root: Path, store_dir: Path
) -> None:
    edit_in_place(src.file("alpha/util.py"))  # a copy with a reason, in both
    before = snapshot(venv_root)

    dry = clone(src.path, venv_root / "dst", store=store_dir, dry_run=True)

    assert snapshot_diff(before, snapshot(venv_root)) == []
    assert not store_dir.exists() and not (venv_root / "dst").exists()
    real = clone(src.path, venv_root / "dst", store=store_dir)
    assert dry.dry_run and not real.dry_run
    assert _figures(dry) == _figures(real)
    assert dry.adopted > 0
    # Folders are foreseen from SRC's own: within a few blocks of what DST takes.
    assert abs(dry.bytes_added - real.bytes_added) <= 4 * 4096


def test_a_second_clone_adopts_nothing(src: Venv, venv_root: Path, store_dir: Path) -> None:
    first = clone(src.path, venv_root / "one", store=store_dir)
    second = clone(src.path, venv_root / "two", store=store_dir)
    assert first.adopted > 0 and second.adopted == 0
    assert _figures(first)[1:5] == _figures(second)[1:5]
    assert os.lstat(Venv(venv_root / "two").file("alpha/core.py")).st_nlink == 4


# A child that clones and dies (SIGKILL) at the Nth file it shares, or just before the
# rename that makes the temp folder DST.
_KILLED_CHILD = r"""
import os, signal, sys
import dedupe.link.sharing as sharing
from dedupe.clone import clone

src, dst, store, where = sys.argv[1:5]
count = 0
if where == "rename":
    real_rename = os.rename
    def rename(a, b, *args, **kwargs):
        if str(b) == dst:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_rename(a, b, *args, **kwargs)
    os.rename = rename
else:
    real_share = sharing.HardlinkShare.share
    def share(self, *args):
        global count
        count += 1
        if count == int(where):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_share(self, *args)
    sharing.HardlinkShare.share = share
clone(src, dst, store=store)
"""


@pytest.mark.parametrize("where", ["1", "5", "rename"])
def test_a_kill_leaves_no_dst_and_the_next_clone_finishes(
    src: Venv, venv_root: Path, store_dir: Path, where: str
) -> None:
    dst = venv_root / "dst"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_CHILD, str(src.path), str(dst), str(store_dir), where],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not dst.exists()
    (half,) = [p for p in venv_root.iterdir() if TEMP_MARK in p.name]
    scanned = scan([venv_root], store=store_dir, dry_run=True)
    assert str(half) not in [v.path for v in scanned.venvs]
    (skip,) = [s for s in scanned.skipped_venvs if s.path == str(half)]
    assert "unfinished venv-dedupe clone" in skip.reason

    clone(src.path, dst, store=store_dir)
    assert [p for p in venv_root.iterdir() if TEMP_MARK in p.name] == []
    assert run_console_script(Venv(dst), "alpha-cli").split()[0] == "alpha-cli"


# --- DST works as a venv (issue #14, Musts 3 and 4) ---------------------------------------


def _pycache_state(top: Path) -> dict[str, tuple[int, int]]:
    """Every pyc under top: (inode, mtime_ns), by path."""
    return {
        str(path): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in top.rglob("__pycache__/*.pyc")
    }


def test_dsts_pycs_are_srcs_and_nothing_compiles_on_first_import(
    src: Venv, venv_root: Path, store_dir: Path
) -> None:
    dst = Venv(venv_root / "dst")
    result = clone(src.path, dst.path, store=store_dir)
    pyc = "alpha/__pycache__/core.cpython-{}{}.pyc".format(*sys.version_info[:2])
    assert os.lstat(dst.file(pyc)).st_ino == os.lstat(src.file(pyc)).st_ino
    assert result.pycs_linked == len(_pycache_state(dst.site_packages)) > 0
    before = _pycache_state(dst.site_packages)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [str(dst.python), "-v", "-c", "import alpha.cli, beta.engine"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert _pycache_state(dst.site_packages) == before  # nothing written, nothing replaced
    for name in ("alpha/cli", "alpha/core", "alpha/util", "beta/engine"):
        loaded = f"code object from '{dst.site_packages}/{name.rsplit('/', 1)[0]}/__pycache__/"
        assert loaded + name.rsplit("/", 1)[1] in done.stderr, name


def test_a_traceback_in_dst_names_dsts_files(src: Venv, venv_root: Path, store_dir: Path) -> None:
    dst = Venv(venv_root / "dst")
    clone(src.path, dst.path, store=store_dir)
    done = subprocess.run(
        [str(dst.python), "-c", "import alpha.util; alpha.util.double(None)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "TypeError" in done.stderr
    assert f'File "{dst.file("alpha/util.py")}", line' in done.stderr
    assert str(src.path) not in done.stderr
    code = "import alpha.util; print(alpha.util.double.__code__.co_filename)"
    assert run_python(dst, code).strip() == str(dst.file("alpha/util.py"))


def test_uninstall_and_upgrade_in_dst_leave_src_as_it_was(
    src: Venv, venv_root: Path, store_dir: Path, wheelhouse: Path
) -> None:
    dst = Venv(venv_root / "dst")
    clone(src.path, dst.path, store=store_dir)
    before, inodes_before = snapshot(src.path), _inodes(src.path)

    pip(dst, "uninstall", "-y", "-q", "beta")
    pip_install(dst, wheelhouse, "--upgrade", "alpha==2.0")

    assert snapshot_diff(before, snapshot(src.path)) == []
    assert _inodes(src.path) == inodes_before
    assert run_console_script(src, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]
    assert run_console_script(dst, "alpha-cli").split() == ["alpha-cli", "2.0", "42", "42"]
    assert run_python(src, "import beta.engine; print(beta.engine.run())").strip() == "43"
    assert [d["name"] for d in _pip_list(dst)] == ["alpha"]


def _inodes(top: Path) -> dict[str, int]:
    return {str(p): p.lstat().st_ino for p in top.rglob("*")}


def test_a_scan_after_a_clone_links_nothing_new(
    src: Venv, venv_root: Path, store_dir: Path
) -> None:
    clone(src.path, venv_root / "dst", store=store_dir)
    result = scan([venv_root], store=store_dir, full=True)
    assert (result.files_linked, result.files_stored) == (0, 0)
    assert (result.pyc.linked, result.pyc.stored, result.pyc.rewritten) == (0, 0, 0)
    assert result.files_already_shared == 2 * 12
    assert result.bytes_reclaimed == 0 and result.errors == ()


# --- copy-on-write stores (reflink mode) -------------------------------------------------


def test_on_a_copy_on_write_store_dst_shares_blocks_with_its_own_inodes(
    cow_mount: Path, wheelhouse: Path
) -> None:
    from helpers import create_venv, pyc_code_only, shares_blocks

    src = create_venv(cow_mount / "venvs" / "src", wheelhouse, "alpha==1.0", "beta==1.0")
    store = cow_mount / "store"
    dst = Venv(cow_mount / "venvs" / "dst")
    before = snapshot(src.path)

    dry = clone(src.path, dst.path, store=store, dry_run=True)
    result = clone(src.path, dst.path, store=store)

    assert result.link_mode == dry.link_mode == "reflink"
    assert _figures(dry) == _figures(result)
    # Reflinks keep every inode; SRC's pycs become checked hash-based ones (same code).
    assert snapshot_diff(pyc_code_only(before), pyc_code_only(snapshot(src.path))) == []
    big = ("alpha/core.py", "alpha/util.py", "alpha/data/table.csv", "beta/engine.py")
    for relpath in big:
        mine, theirs = dst.file(relpath), src.file(relpath)
        assert mine.lstat().st_ino != theirs.lstat().st_ino and mine.lstat().st_nlink == 1
        assert mine.read_bytes() == theirs.read_bytes()
        assert mine.lstat().st_mtime_ns == theirs.lstat().st_mtime_ns
        assert shares_blocks(mine, theirs), relpath
    assert result.files_linked >= len(big)
    # The pycs are valid for DST's sources (same mtime): nothing compiles on import.
    pycs = _pycache_state(dst.site_packages)
    code = "import sys; sys.dont_write_bytecode = False; import alpha.cli, beta.engine; "
    assert run_python(dst, code + "print(beta.engine.run())").strip() == "43"
    assert _pycache_state(dst.site_packages) == pycs
    assert run_console_script(dst, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]


def test_a_src_reached_through_a_symlink_gets_its_scripts_moved(
    wheelhouse: Path, venv_root: Path, store_dir: Path
) -> None:
    """pip writes the interpreter by the path the venv was used as, not its real path."""
    (venv_root / "real").mkdir()
    (venv_root / "link").symlink_to(venv_root / "real")
    src = Venv(venv_root / "link" / "src")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(src.path)], check=True)
    pip_install(src, wheelhouse, "alpha==1.0")
    assert (src.bin / "alpha-cli").read_bytes().startswith(f"#!{src.path}/bin/".encode())
    dst = Venv(venv_root / "dst")

    clone(src.path, dst.path, store=store_dir)

    assert (dst.bin / "alpha-cli").read_bytes().startswith(f"#!{dst.path}/bin/python".encode())
    for path, data in _text_files(dst.path).items():
        assert str(venv_root / "link").encode() not in data, path


@pytest.mark.parametrize("workers", [1, 2])
def test_a_src_file_replaced_during_the_clone_stops_it_whole(
    src: Venv, venv_root: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    import dedupe.clone.build as build_module
    import dedupe.clone.run as run_module

    monkeypatch.setattr(build_module, "_idle_workers", lambda: workers)

    real_build = run_module.build

    def replace_then_build(*args: object) -> None:
        # As pip replaces a file: a new inode renamed over the name.
        target = src.file("alpha/core.py")
        fresh = target.with_name("core.py.new")
        fresh.write_bytes(target.read_bytes())
        os.rename(fresh, target)
        real_build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module, "build", replace_then_build)
    with pytest.raises(CloneError, match="SRC changed during the clone"):
        clone(src.path, venv_root / "dst", store=store_dir)
    assert sorted(p.name for p in venv_root.iterdir()) == ["src"]


def test_on_a_copy_on_write_store_a_file_edited_after_its_scan_is_copied(
    cow_mount: Path, wheelhouse: Path
) -> None:
    """Sharing blocks does not stop an edit in place (it copies only the blocks it writes):
    such a file holds blocks of its own, and no longer its RECORD's bytes."""
    from helpers import append_record_lines, create_venv, shares_blocks
    from wheelbuilder import record_hash

    src = create_venv(cow_mount / "venvs" / "src", wheelhouse, "alpha==1.0", "beta==1.0")
    big = src.file("alpha/data/big.bin")  # a file of many extents' worth of blocks
    data = bytes(range(256)) * 8192
    big.write_bytes(data)
    append_record_lines(
        src, "alpha-1.0.dist-info", f"alpha/data/big.bin,{record_hash(data)},{len(data)}"
    )
    store = cow_mount / "store"
    clone(src.path, cow_mount / "venvs" / "first", store=store)  # shares big.bin's blocks
    with big.open("r+b") as f:
        f.write(b"x")  # in place: its first block is copied, the others stay shared
    dst = Venv(cow_mount / "venvs" / "dst")

    result = clone(src.path, dst.path, store=store)

    edited = (str(dst.file("alpha/data/big.bin")), CopyReason.CHANGED_SINCE_INSTALL)
    assert edited in [(c.path, c.reason) for c in result.copied]
    assert dst.file("alpha/data/big.bin").read_bytes() == big.read_bytes()
    assert shares_blocks(dst.file("alpha/util.py"), src.file("alpha/util.py"))


def _tree(top: Path, src: Path) -> dict[str, tuple[object, ...]]:
    """Each path under top: its type and mode, and whether it is SRC's inode (shared)."""
    found: dict[str, tuple[object, ...]] = {}
    src_inodes = {os.lstat(Path(f, n)).st_ino for f, ds, fs in os.walk(src) for n in ds + fs}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(folder, name)
            st = os.lstat(path)
            found[str(path.relative_to(top))] = (st.st_mode, st.st_ino in src_inodes)
    return found


def test_one_thread_or_two_make_the_same_dst(
    src: Venv, venv_root: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedupe.clone.build as build_module

    made = {}
    for workers in (1, 2):
        monkeypatch.setattr(build_module, "_idle_workers", lambda n=workers: n)
        dst = venv_root / f"dst{workers}"
        result = clone(src.path, dst, store=store_dir)
        made[workers] = (_tree(dst, src.path), _figures(result)[1:5], result.bytes_added)
    assert made[1] == made[2]
    assert any(shared for _mode, shared in made[2][0].values())


def test_a_src_file_removed_during_the_clone_stops_it_whole(
    src: Venv, venv_root: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedupe.clone.run as run_module

    real_build = run_module.build

    def remove_then_build(*args: object) -> None:
        src.file("alpha/core.py").unlink()  # as a pip uninstall in SRC would, meanwhile
        real_build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module, "build", remove_then_build)
    with pytest.raises(CloneError, match="SRC changed during the clone"):
        clone(src.path, venv_root / "dst", store=store_dir)
    assert sorted(p.name for p in venv_root.iterdir()) == ["src"]
