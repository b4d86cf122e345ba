"""The status, verify, detach and gc commands end to end: output, JSON and exit codes, the
lock options, and the store's refusal of loose ownership or permissions."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import (
    MakeVenvs,
    Venv,
    create_uv_venv,
    disk_usage,
    edit_in_place,
    inodes,
    pip,
    run_cli,
    run_console_script,
    saving_of_objects,
    snapshot,
    snapshot_diff,
    store_objects,
)

from dedupe.text import human_size

UTIL = "alpha/util.py"
# After `two`'s scan: alpha 1.0's 8 non-empty files and its 4 modules' pycs are shared by a
# and b (12 objects); beta's WHEEL has the bytes of alpha's, so a shares it too. a shares
# 13 files, b 12; alpha accounts for 24 of them (in 2 venvs), beta for 1 (in a).
OBJECTS, A_SHARED, B_SHARED = 12, 13, 12


@pytest.fixture
def two(make_venvs: MakeVenvs, venv_root: Path, store_dir: Path) -> tuple[Venv, ...]:
    """a: alpha 1.0 + beta 1.0, b: alpha 1.0; scanned through the CLI into store_dir."""
    venvs = make_venvs(venv_root, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0"])
    run = run_cli("scan", "--quiet", "--store", str(store_dir), str(venv_root))
    assert run.returncode == 0, run
    return venvs


def test_status_json_reports_bytes_saved(
    two: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    run = run_cli("status", "--json", "--store", str(store_dir), str(venv_root))
    assert run.returncode == 0, run
    data = run.json()
    assert data["bytes_saved"] == saving_of_objects(store_dir) > 0
    assert [(v["path"], v["files_shared"]) for v in data["venvs"]] == [
        (str(two[0].path), A_SHARED),
        (str(two[1].path), B_SHARED),
    ]
    assert {
        (d["name"], d["version"]): (d["venvs"], d["files_shared"]) for d in data["distributions"]
    } == {("alpha", "1.0"): (2, 24), ("beta", "1.0"): (1, 1)}
    assert data["stores"][0]["objects"] == len(store_objects(store_dir)) == OBJECTS

    text = run_cli("status", "--store", str(store_dir), str(venv_root))
    assert text.returncode == 0, text
    lines = text.stdout.splitlines()
    saved = human_size(data["bytes_saved"])
    assert f"store {store_dir}: {OBJECTS} objects, 0 unused; sharing saves {saved}" in lines
    assert lines[-1] == f"saved in total: {saved} ({A_SHARED + B_SHARED} shared files)"
    # The distributions' table: name, version, venvs, files, saves.
    rows = {row[0]: row[1:4] for row in map(str.split, lines) if row[:1] in (["alpha"], ["beta"])}
    assert rows == {"alpha": ["1.0", "2", "24"], "beta": ["1.0", "1", "1"]}


def test_verify_exits_0_on_an_intact_store_and_1_on_an_edit(
    two: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b = two
    intact = run_cli("verify", "--store", str(store_dir), str(venv_root))
    assert intact.returncode == 0, intact
    assert intact.stdout == (
        f"venv-dedupe verify: {OBJECTS} object(s) checked in {store_dir}: all intact\n"
    )

    edit_in_place(b.file(UTIL))
    run = run_cli("verify", "--json", "--store", str(store_dir), str(venv_root))
    assert run.returncode == 1, run
    data = run.json()
    assert data["ok"] is False
    (damaged,) = data["damaged"]
    assert {f["path"] for f in damaged["linked_files"]} == {str(a.file(UTIL)), str(b.file(UTIL))}
    assert {
        (f["distribution"]["name"], f["distribution"]["version"]) for f in damaged["linked_files"]
    } == {("alpha", "1.0")}
    commands = {r["venv"]: r["command"] for r in data["repairs"]}
    assert set(commands) == {str(a.path), str(b.path)}
    for venv in (a, b):
        assert "--force-reinstall" in commands[str(venv.path)]
        assert "alpha==1.0" in commands[str(venv.path)]
        assert str(venv.python) in commands[str(venv.path)]

    text = run_cli("verify", "--store", str(store_dir), str(venv_root))
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0] == f"venv-dedupe verify: {OBJECTS} object(s) checked in {store_dir}: 1 damaged"
    expected = [
        "  its bytes no longer match its name (sha256): a file linked to it was edited in place",
        "  its bytes are in 2 venv file(s):",
        f"    {a.file(UTIL)} (alpha==1.0)",
        f"    {b.file(UTIL)} (alpha==1.0)",
        "to give each venv intact files again, reinstall in it:",
        f"  {commands[str(a.path)]}",
        f"  {commands[str(b.path)]}",
        "run `venv-dedupe verify --repair` to move damaged objects out of the store",
    ]
    assert [line for line in expected if line not in lines] == [], text.stdout


def test_verify_repair_moves_the_object_out_of_the_store(
    two: tuple[Venv, ...], venv_root: Path, store_dir: Path, make_venvs: MakeVenvs
) -> None:
    a, b = two
    damaged_ino = os.lstat(a.file(UTIL)).st_ino
    edit_in_place(a.file(UTIL))

    run = run_cli("verify", "--repair", "--store", str(store_dir), str(venv_root))

    assert run.returncode == 1, run
    assert damaged_ino not in store_objects(store_dir)
    moved = [p for p in (store_dir / "damaged").rglob("*") if p.is_file()]
    assert [os.lstat(p).st_ino for p in moved] == [damaged_ino]
    lines = run.stdout.splitlines()
    assert f"  moved to {moved[0]}: no scan will link to it again" in lines, run.stdout
    assert (
        "repair: moved 1 damaged object(s) out of the store; the venv files keep their bytes "
        "until the commands above are run"
    ) in lines, run.stdout
    (c,) = make_venvs(venv_root, c=["alpha==1.0"])
    rescan = run_cli("scan", "--quiet", "--store", str(store_dir), str(venv_root))
    assert rescan.returncode == 0, rescan
    assert os.lstat(c.file(UTIL)).st_ino != damaged_ino
    assert os.lstat(moved[0]).st_nlink == 3  # a, b and damaged/ only


def test_detach_dry_run_then_detach(
    two: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    a, b = two
    before, inodes_before = snapshot(a.path), inodes(venv_root)

    dry = run_cli("detach", "--dry-run", "--store", str(store_dir), str(a.path))
    assert dry.returncode == 0, dry
    assert inodes(venv_root) == inodes_before
    title, venv_line, space_line = dry.stdout.splitlines()
    assert title == "venv-dedupe detach (dry run: nothing was changed)"
    assert venv_line.startswith(
        f"  {a.path}: would give {A_SHARED} of {A_SHARED} shared file(s) private copies ("
    ), dry.stdout
    assert space_line.startswith("space on ") and space_line.endswith(": fits"), dry.stdout
    needed = venv_line.rsplit("(", 1)[1].rstrip(")")
    assert f": {needed} needed, " in space_line, dry.stdout

    run = run_cli("detach", "--json", "--store", str(store_dir), str(a.path))
    assert run.returncode == 0, run
    data = run.json()
    assert data["files_detached"] == data["files_shared"] == A_SHARED
    assert snapshot_diff(before, snapshot(a.path)) == []
    object_inodes = set(store_objects(store_dir))
    assert not [p for p, (_, ino) in inodes(a.path).items() if ino in object_inodes]
    assert os.lstat(b.file(UTIL)).st_ino in object_inodes  # b still shares
    assert run_console_script(a, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]


def test_detach_of_a_folder_that_is_no_venv_exits_2(
    two: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    run = run_cli("detach", "--store", str(store_dir), str(venv_root))
    assert run.returncode == 2, run
    assert run.stderr == (
        f"venv-dedupe: error: {str(venv_root)!r} is not a virtualenv (no pyvenv.cfg)\n"
    )


def test_gc_json_reports_bytes_freed(
    two: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    for venv in two:
        pip(venv, "uninstall", "-y", "-q", "alpha")
    objects = store_objects(store_dir)
    usage_before = disk_usage(store_dir)

    dry = run_cli("gc", "--dry-run", "--json", "--store", str(store_dir))
    assert dry.returncode == 0, dry
    assert store_objects(store_dir) == objects

    run = run_cli("gc", "--json", "--store", str(store_dir))
    assert run.returncode == 0, run
    freed = usage_before.allocated - disk_usage(store_dir).allocated
    assert run.json()["bytes_freed"] == dry.json()["bytes_freed"] == freed > 0
    # Unused now: all 12 objects but the WHEEL object, which beta's WHEEL in a still uses.
    assert run.json()["files_removed"] == len(objects) - len(store_objects(store_dir))
    assert run.json()["files_removed"] == OBJECTS - 1

    text = run_cli("gc", "--store", str(store_dir))
    assert text.returncode == 0, text
    assert text.stdout.splitlines() == [
        f"venv-dedupe gc: store {store_dir}, 1 object(s)",
        "removed 0 unused object(s), freed 0 B (0 B apparent size)",
    ]


# --- the lock ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["gc"], id="gc"),
        pytest.param(["verify", "--repair"], id="verify-repair"),
    ],
)
def test_no_wait_exits_2_at_once_naming_the_holder(
    two: tuple[Venv, ...], held_lock: int, store_dir: Path, command: list[str]
) -> None:
    start = time.monotonic()
    run = run_cli(*command, "--no-wait", "--store", str(store_dir))
    assert time.monotonic() - start < 5  # no waiting: the interpreter's start-up only
    assert run.returncode == 2, run
    assert f"pid {held_lock}" in run.stderr
    assert str(store_dir / "lock") in run.stderr
    assert "waiting" not in run.stderr


def test_lock_timeout_waits_then_exits_2(
    two: tuple[Venv, ...], held_lock: int, store_dir: Path, venv_root: Path
) -> None:
    start = time.monotonic()
    run = run_cli("detach", "--lock-timeout", "1", "--store", str(store_dir), str(venv_root / "a"))
    assert time.monotonic() - start >= 1
    assert run.returncode == 2, run
    assert run.stderr.count("waiting up to 1 s") == 1
    assert f"pid {held_lock}" in run.stderr.splitlines()[-1]


def test_bad_lock_timeout_is_a_usage_error(store_dir: Path) -> None:
    run = run_cli("gc", "--lock-timeout", "-1", "--store", str(store_dir))
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == (
        "venv-dedupe: error: argument --lock-timeout: '-1' is not a number of seconds >= 0"
    )


# --- store safety --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["status"], id="status"),
        pytest.param(["verify"], id="verify"),
        pytest.param(["gc"], id="gc"),
        pytest.param(["scan"], id="scan"),
    ],
)
def test_a_store_writable_by_others_exits_2(
    two: tuple[Venv, ...], venv_root: Path, store_dir: Path, command: list[str]
) -> None:
    before = inodes(venv_root)
    store_dir.chmod(0o777)
    roots = [] if command == ["gc"] else [str(venv_root)]
    run = run_cli(*command, "--store", str(store_dir), *roots)
    assert run.returncode == 2, run
    assert f"chmod go-w {store_dir}" in run.stderr
    assert inodes(venv_root) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_store_owned_by_another_user_exits_2(
    two: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    os.chown(store_dir, 4242, 4242)
    run = run_cli("status", "--store", str(store_dir), str(venv_root))
    assert run.returncode == 2, run
    assert "owned by uid 4242" in run.stderr and "chown" in run.stderr


def _object_inodes_in(store: Path, *venvs: Venv) -> set[int]:
    """The inodes of the venvs' files that are store objects or damaged ones moved aside."""
    held = set(store_objects(store)) | {
        os.lstat(p).st_ino for p in (store / "damaged").rglob("*") if p.is_file()
    }
    return {ino for venv in venvs for _, ino in inodes(venv.path).values()} & held


def test_scan_status_and_gc_count_the_same_objects_and_the_same_unused(
    make_venvs: MakeVenvs, tmp_path: Path, store_dir: Path
) -> None:
    """Issue #12: a scan, status, gc --dry-run and gc once said 4,919 objects and 1 unused
    against 4,920 and 2. Unused is one definition: link count 1, the objects and the
    damaged ones verify --repair moved aside alike; names outside the roots keep an
    object in use."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    a, b = make_venvs(root, a=["alpha==1.0", "beta==1.0"], b=["alpha==1.0", "beta==1.0"])
    (c,) = make_venvs(outside, c=["--no-deps", "beta==1.0"])
    first = run_cli("scan", "--quiet", "--store", str(store_dir), str(root), str(outside))
    assert first.returncode == 0, first
    edit_in_place(a.file(UTIL))
    repair = run_cli("verify", "--repair", "--store", str(store_dir), str(root))
    assert repair.returncode == 1, repair
    # alpha's objects (sources and pycs, and the damaged util.py) have names in a and b
    # only: uninstalling it leaves them unused. beta's keep names in c, outside the root.
    before = _object_inodes_in(store_dir, a, b)
    for venv in (a, b):
        pip(venv, "uninstall", "-y", "-q", "alpha")
    unused = before - _object_inodes_in(store_dir, a, b)
    in_c = _object_inodes_in(store_dir, c)
    for venv in (a, b):
        pip(venv, "uninstall", "-y", "-q", "beta")
    assert in_c and unused and not in_c & unused
    objects = len(store_objects(store_dir))

    rescan = run_cli("scan", "--json", "--store", str(store_dir), str(root))
    assert rescan.returncode == 0, rescan
    assert rescan.json()["stores"][0]["objects"] == objects
    state = run_cli("status", "--json", "--store", str(store_dir), str(root))
    assert state.returncode == 0, state
    (store,) = state.json()["stores"]
    assert (store["objects"], store["damaged_objects"], store["unused_objects"]) == (
        objects,
        1,
        len(unused),
    )
    # beta's objects: each has one name, in c, which the root does not hold.
    assert store["links_outside_roots"] == len(in_c)
    dry = run_cli("gc", "--dry-run", "--json", "--store", str(store_dir))
    assert dry.returncode == 0, dry
    assert (dry.json()["objects"], dry.json()["damaged_objects"]) == (objects, 1)
    assert dry.json()["files_removed"] == len(unused)
    texts = [
        run_cli("status", "--store", str(store_dir), str(root)).stdout.splitlines(),
        run_cli("gc", "--dry-run", "--store", str(store_dir)).stdout.splitlines(),
    ]
    damaged = "(and 1 damaged, moved aside by verify --repair)"
    assert (
        f"store {store_dir}: {objects} objects {damaged}, {len(unused)} unused "
        f"({human_size(store['unused_bytes'])}: `venv-dedupe gc` removes them); "
        f"sharing saves {human_size(store['bytes_saved'])}"
    ) in texts[0]
    assert texts[1][:2] == [
        f"venv-dedupe gc (dry run: nothing was changed): store {store_dir}, "
        f"{objects} object(s) {damaged}",
        f"would remove {len(unused)} unused object(s), would free "
        f"{human_size(dry.json()['bytes_freed'])} "
        f"({human_size(dry.json()['apparent_bytes_freed'])} apparent size), "
        f"and {dry.json()['folders_removed']} empty folder(s)",
    ]

    real = run_cli("gc", "--json", "--store", str(store_dir))
    assert real.returncode == 0, real
    assert real.json()["files_removed"] == len(unused)
    assert len(store_objects(store_dir)) == objects - (len(unused) - 1)
    assert _object_inodes_in(store_dir, c) == in_c  # what c uses stays
    after = run_cli("status", "--json", "--store", str(store_dir), str(root)).json()["stores"][0]
    assert (after["objects"], after["damaged_objects"], after["unused_objects"]) == (
        objects - (len(unused) - 1),
        0,
        0,
    )


def test_verify_names_the_uv_link_mode_each_venv_was_made_with(
    make_venvs: MakeVenvs,
    venv_root: Path,
    store_dir: Path,
    wheelhouse: Path,
    uv_cache: Path,
) -> None:
    """Issue #12: uv's repair command left out the link mode, so following it re-hardlinked
    a venv made with --link-mode copy from uv's cache. a is uv's in hardlink mode (first:
    its inodes, which uv's cache holds too, become the objects), b pip's, c uv's in copy
    mode. An edit in place through b reaches the cache too: verify says so."""
    a = create_uv_venv(venv_root / "a", wheelhouse, uv_cache, "hardlink", "alpha==1.0")
    (b,) = make_venvs(venv_root, b=["alpha==1.0"])
    c = create_uv_venv(venv_root / "c", wheelhouse, uv_cache, "copy", "alpha==1.0")
    scanned = run_cli("scan", "--quiet", "--store", str(store_dir), str(venv_root))
    assert scanned.returncode == 0, scanned
    edit_in_place(b.file(UTIL))

    run = run_cli("verify", "--json", "--store", str(store_dir), str(venv_root))

    assert run.returncode == 1, run
    data = run.json()
    (damaged,) = data["damaged"]
    archive = uv_cache / "archive-v0"
    assert damaged["outside_roots"]["found"] == [{"folder": str(archive), "names": 1}]
    repairs = {r["venv"]: (r["command"], r["note"]) for r in data["repairs"]}
    uv = "uv pip install --python {} --reinstall --no-deps --link-mode {} alpha==1.0"
    assert repairs == {
        str(a.path): (uv.format(a.python, "hardlink"), None),
        str(b.path): (
            f"python3 -m pip --python {b.python} install --force-reinstall --no-deps alpha==1.0",
            None,
        ),
        str(c.path): (uv.format(c.python, "copy"), None),
    }
    text = run_cli("verify", "--store", str(store_dir), str(venv_root)).stdout.splitlines()
    expected = [
        f"  1 other name(s) of it are outside the venvs looked at: 1 in {archive}",
        "  those caches hold the damaged bytes too: clean them first (for uv: "
        "`uv cache clean alpha`), or a reinstall from them, in any link mode, brings the "
        "damage back",
        f"  {uv.format(c.python, 'copy')}",
    ]
    assert [line for line in expected if line not in text] == [], text
