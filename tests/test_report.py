"""What the scan's and status's reports say, end to end on real venvs: per venv what was
stored, linked and linked without gain; where the names outside the roots are (uv's
cache); which paths du must cover; and venv paths shortened by their common folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers import (
    MakeVenvs,
    Venv,
    create_uv_venv,
    inodes,
    run_cli,
    store_objects,
    wheel_files,
)

# alpha 1.0's non-empty files (5 in the package, METADATA, WHEEL, entry_points.txt): what
# uv hardlinks from its cache and what a scan shares.
ALPHA_FILES = 8


def _du(*paths: Path) -> int:
    """What `du -s -B1 -c` says the paths hold together (each inode counted once)."""
    out = subprocess.run(
        ["du", "-s", "-B1", "-c", *map(str, paths)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.splitlines()[-1].split()[0])


def _row(lines: list[str], name: str) -> list[str]:
    (row,) = [line.split() for line in lines if line.startswith(f"  {name} ")]
    return row[1:]


def test_a_venv_whose_files_all_became_objects_reads_stored(
    make_venvs: MakeVenvs, venv_root: Path, store_dir: Path, wheelhouse: Path
) -> None:
    """a's copies become the objects, b's are linked to them: a does not read "0 linked"
    as if nothing happened, and both JSON and text say so per venv."""
    assert len([b for b in wheel_files(wheelhouse, "alpha==1.0").values() if b]) == ALPHA_FILES
    make_venvs(venv_root, a=["alpha==1.0"], b=["alpha==1.0"])
    run = run_cli("scan", "--json", "--store", str(store_dir), str(venv_root))
    assert run.returncode == 0, run
    venvs = {Path(v["path"]).name: v for v in run.json()["venvs"]}
    assert {n: (v["files_stored"], v["files_linked"]) for n, v in venvs.items()} == {
        "a": (ALPHA_FILES, 0),
        "b": (0, ALPHA_FILES),
    }
    assert venvs["a"]["files_linked_without_gain"] == venvs["b"]["files_linked_without_gain"] == 0

    # A rerun reads them as shared; the dry run before it said the same as the real run.
    text = run_cli("scan", "--store", str(store_dir), str(venv_root)).stdout.splitlines()
    assert f"venvs in {venv_root}{os.sep}:" in text
    header = "  venv    files   stored   linked  no gain   shared   reclaimed  of it pycs"
    assert header in text, text
    assert _row(text, "a") == ["13", "0", "0", "0", str(ALPHA_FILES), "0", "B", "0", "B"]
    assert _row(text, "b") == ["13", "0", "0", "0", str(ALPHA_FILES), "0", "B", "0", "B"]


def test_table_paths_are_shortened_by_their_common_folder_never_cut(
    make_venvs: MakeVenvs, tmp_path: Path, store_dir: Path
) -> None:
    deep = tmp_path / "home" / "me" / ".cache" / "pypoetry" / "virtualenvs"
    names = {f"project-{n}-Wq3kLm9x-py3.11": ["alpha==1.0"] for n in ("one", "two")}
    make_venvs(deep, **names)
    scanned = run_cli("scan", "--store", str(store_dir), str(deep))
    state = run_cli("status", "--store", str(store_dir), str(deep))
    for run in (scanned, state):
        assert run.returncode == 0, run
        lines = run.stdout.splitlines()
        assert f"venvs in {deep}{os.sep}:" in lines, run.stdout
        assert [line for line in lines if line.startswith("  ...")] == [], run.stdout
        for name in names:
            assert any(line.startswith(f"  {name}  ") for line in lines), run.stdout


def _pip_then_uv(make_venvs: MakeVenvs, root: Path, wheelhouse: Path, cache: Path) -> Venv:
    """a: pip's alpha 1.0, b: uv's, hardlinked from its cache; a comes first, so its
    copies become the objects and b's are linked to them without gain."""
    make_venvs(root, a=["alpha==1.0"])
    return create_uv_venv(root / "b", wheelhouse, cache, "hardlink", "alpha==1.0")


def test_a_uv_venv_linked_without_gain_says_so_and_where_its_other_names_are(
    make_venvs: MakeVenvs,
    venv_root: Path,
    store_dir: Path,
    wheelhouse: Path,
    uv_cache: Path,
) -> None:
    b = _pip_then_uv(make_venvs, venv_root, wheelhouse, uv_cache)
    in_cache = {ino for _, ino in inodes(uv_cache).values()}
    linked_from_cache = [
        p
        for p, (_, ino) in inodes(b.path).items()
        if ino in in_cache and os.path.getsize(b.path / p)  # an empty file is never shared
    ]
    assert len(linked_from_cache) == ALPHA_FILES
    archive = uv_cache / "archive-v0"
    before, before_without_cache = _du(venv_root, archive), _du(venv_root)
    linked_from_cache_before = {p: os.lstat(b.path / p) for p in linked_from_cache}

    run = run_cli("scan", "--json", "--store", str(store_dir), str(venv_root))

    assert run.returncode == 0, run
    data = run.json()
    report = {Path(v["path"]).name: v for v in data["venvs"]}["b"]
    assert report["files_linked_without_gain"] == ALPHA_FILES
    assert data["replaced_names_elsewhere"] == {
        "found": [{"folder": str(archive), "names": ALPHA_FILES}],
        "not_found": 0,
        "looked_in": [str(uv_cache)],
    }
    # b gained nothing: its files' inodes live on in uv's cache, and uv wrote no pycs.
    assert (report["bytes_reclaimed"], report["pyc"]["bytes_reclaimed"]) == (0, 0)
    # The net figure is what du shows over the roots, the store and uv's archive, the
    # memos apart; without the archive, du would count b's old inodes as gone.
    net = data["bytes_reclaimed"] - data["store_overhead_bytes"]
    memos = data["stores"][0]["scan_state_bytes"]
    assert before - _du(venv_root, store_dir, archive) == net - memos
    old_inodes = sum(st.st_blocks * 512 for st in linked_from_cache_before.values())
    assert before_without_cache - _du(venv_root, store_dir) == net - memos + old_inodes
    assert old_inodes > 0
    _check_no_gain_text(make_venvs, wheelhouse, uv_cache, store_dir.parent, report["files_scanned"])


def _check_no_gain_text(
    make_venvs: MakeVenvs, wheelhouse: Path, cache: Path, top: Path, b_files: int
) -> None:
    """The dry run of a fresh pair says in text what the real run's JSON said."""
    root, store = top / "fresh", top / "fresh-store"
    _pip_then_uv(make_venvs, root, wheelhouse, cache)
    run = run_cli("scan", "--dry-run", "--store", str(store), str(root))
    assert run.returncode == 0, run
    lines = run.stdout.splitlines()
    archive = cache / "archive-v0"
    assert _row(lines, "b") == [str(b_files), "0", "0", str(ALPHA_FILES), "0", "0", "B", "0", "B"]
    assert (
        f"  the other names of the inodes linked without gain: {ALPHA_FILES} in {archive}"
    ) in lines, run.stdout
    (net_line,) = [line for line in lines if line.startswith("the store's folders")]
    assert net_line.endswith(
        f"the change `du -s` over the roots, the store and {archive} shows, "
        "less the memos a real run keeps in the store"
    ), net_line


def test_objects_made_from_a_uv_venv_have_their_other_names_in_uvs_cache(
    make_venvs: MakeVenvs,
    venv_root: Path,
    store_dir: Path,
    wheelhouse: Path,
    uv_cache: Path,
) -> None:
    """a is uv's, first: its inodes, which uv's cache holds too, become the objects.
    The scan and status say so and where, status per cache folder."""
    create_uv_venv(venv_root / "a", wheelhouse, uv_cache, "hardlink", "alpha==1.0")
    make_venvs(venv_root, b=["alpha==1.0"])
    archive = uv_cache / "archive-v0"

    run = run_cli("scan", "--json", "--store", str(store_dir), str(venv_root))

    assert run.returncode == 0, run
    data = run.json()
    assert data["files_linked_without_gain"] == 0
    assert data["object_names_elsewhere"]["found"] == [
        {"folder": str(archive), "names": ALPHA_FILES}
    ]
    objects = set(store_objects(store_dir))
    in_archive = [ino for _, ino in inodes(archive).values() if ino in objects]
    assert len(in_archive) == ALPHA_FILES

    state = run_cli("status", "--json", "--store", str(store_dir), str(venv_root))
    assert state.returncode == 0, state
    (store,) = state.json()["stores"]
    assert store["links_outside_roots"] == ALPHA_FILES
    assert store["outside_roots"] == {
        "found": [{"folder": str(archive), "names": ALPHA_FILES}],
        "not_found": 0,
        "looked_in": [str(uv_cache)],
    }
    text = run_cli("status", "--store", str(store_dir), str(venv_root)).stdout.splitlines()
    assert (
        f"  {ALPHA_FILES} name(s) of its objects are outside the venvs looked at: "
        f"{ALPHA_FILES} in {archive}"
    ) in text, text
    # With b alone as the root, a's names are outside too, and in no cache.
    only_b = run_cli("status", "--json", "--store", str(store_dir), str(venv_root / "b"))
    (store,) = only_b.json()["stores"]
    assert store["outside_roots"]["found"] == [{"folder": str(archive), "names": ALPHA_FILES}]
    assert store["outside_roots"]["not_found"] == store["links_outside_roots"] - ALPHA_FILES > 0
