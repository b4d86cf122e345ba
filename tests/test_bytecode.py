"""Bytecode after a scan: every pyc that was valid stays valid, and pycs are shared.

Each test builds real venvs with ``python -m venv`` and pip, scans them, then asks the
venvs' own interpreters (``python -v``) whether any bytecode is stale, and checks inode
numbers: a pyc that Python had to recompile would get a new inode and mtime.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PIP_ENV, Venv, pip_install, source_of_pyc

from dedupe import scan
from dedupe.bytecode import can_hash, checked_hash_header, parse_header, valid_for_stat

ALPHA = ("alpha", "alpha.core", "alpha.util", "alpha.cli")
MODULES = (*ALPHA, "beta", "beta.engine")


@functools.cache
def interpreters(oldest: int = 9) -> dict[str, str]:
    """Every CPython >= 3.<oldest> on this machine that can make a venv, one per minor
    version: the one running the tests, those on PATH, and pyenv's."""
    candidates = [sys.executable]
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(oldest, 16)]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.*", "bin", "python3")))
    found: dict[str, str] = {}
    for exe in filter(None, candidates):
        try:
            out = subprocess.run(
                [exe, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = out.stdout.strip()
        if out.returncode == 0 and version and tuple(map(int, version.split("."))) >= (3, oldest):
            found.setdefault(version, exe)
    return found


def make_venv(interpreter: str, path: Path, wheelhouse: Path, *args: str) -> Venv:
    subprocess.run([interpreter, "-m", "venv", "--without-pip", str(path)], check=True)
    venv = Venv(path)
    try:
        pip_install(venv, wheelhouse, *args)
    except AssertionError as exc:
        if "does not support python" not in str(exc):
            raise
        # The outer pip is too new for this interpreter: use the one it bundles.
        subprocess.run([str(venv.python), "-m", "ensurepip"], check=True, capture_output=True)
        subprocess.run(
            [
                str(venv.python),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                *args,
            ],
            check=True,
            env={**os.environ, **PIP_ENV},
        )
    return venv


def pycs(venv: Venv) -> dict[Path, os.stat_result]:
    """The pycs of the test distributions (a venv made by ensurepip also holds pip's)."""
    return {
        p: p.stat()
        for package in ("alpha", "beta")
        for p in (venv.site_packages / package).rglob("__pycache__/*.pyc")
    }


def source_of(pyc: Path) -> Path:
    return pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")


def valid(pyc: Path) -> bool:
    """What the importer decides for a timestamp pyc (hash-based ones: by their flag)."""
    header = parse_header(pyc.read_bytes()[:16])
    if header.hash_based:
        return True
    st = source_of(pyc).stat()
    return valid_for_stat(header, st.st_mtime_ns, st.st_size)


def import_verbose(venv: Venv, modules: tuple[str, ...] = MODULES) -> str:
    done = subprocess.run(
        [str(venv.python), "-v", "-c", "import " + ", ".join(modules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def assert_imports_from_valid_pycs(venv: Venv, modules: tuple[str, ...] = MODULES) -> None:
    """Import every module: none stale, each from its pyc, and no pyc rewritten."""
    before = pycs(venv)
    log = import_verbose(venv, modules)
    assert "bytecode is stale" not in log
    for module in modules:
        parts = module.split(".")
        folder = venv.site_packages.joinpath(*parts[:-1]) if len(parts) > 1 else venv.site_packages
        stem = parts[-1]
        if (folder / stem).is_dir():
            folder, stem = folder / stem, "__init__"
        assert f"# code object from '{folder}/__pycache__/{stem}." in log, module
    after = pycs(venv)
    assert {p: (s.st_ino, s.st_mtime_ns) for p, s in after.items()} == {
        p: (s.st_ino, s.st_mtime_ns) for p, s in before.items()
    }


@pytest.mark.parametrize("version", sorted(interpreters()))
def test_every_interpreter_keeps_valid_pycs_and_shares_them(
    version: str, wheelhouse: Path, tmp_path: Path
) -> None:
    interpreter = interpreters()[version]
    root = tmp_path / "venvs"
    a = make_venv(interpreter, root / "a", wheelhouse, "alpha==1.0", "beta==1.0")
    b = make_venv(interpreter, root / "b", wheelhouse, "alpha==1.0", "beta==1.0")
    assert all(valid(p) for venv in (a, b) for p in pycs(venv))

    result = scan([root], store=tmp_path / "store")

    assert result.pyc.linked > 0 and result.pyc.bytes_reclaimed > 0
    for venv in (a, b):
        assert all(valid(p) for p in pycs(venv)), venv
        assert_imports_from_valid_pycs(venv)
    # One inode per pyc across the two venvs, and it is a store object.
    for pyc_a, st_a in pycs(a).items():
        st_b = (b.path / pyc_a.relative_to(a.path)).stat()
        assert st_a.st_ino == st_b.st_ino, pyc_a
        assert st_a.st_nlink == 3  # a, b and the store
    # Tracebacks and co_filename name each venv's own file, not the one that compiled it.
    for venv in (a, b):
        done = subprocess.run(
            [str(venv.python), "-c", "import alpha.util; alpha.util.double(None)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert f'File "{venv.file("alpha/util.py")}"' in done.stderr
        code = "import alpha.util as m; print(m.double.__code__.co_filename)"
        out = subprocess.run(
            [str(venv.python), "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        assert out == str(venv.file("alpha/util.py"))


def test_pycs_written_later_by_python_are_shared_by_a_later_scan(
    wheelhouse: Path, tmp_path: Path
) -> None:
    """Like uv without --compile-bytecode: RECORD lists no pyc; Python writes them on import."""
    root, store = tmp_path / "venvs", tmp_path / "store"
    venvs = [
        make_venv(sys.executable, root / n, wheelhouse, "--no-compile", "alpha==1.0", "beta==1.0")
        for n in ("a", "b")
    ]
    assert not any(pycs(v) for v in venvs)
    first = scan([root], store=store)
    assert first.files_linked > 0 and first.pyc.scanned == 0
    for venv in venvs:
        import_verbose(venv)  # Python compiles and writes the pycs now
    assert all(pycs(v) for v in venvs)

    second = scan([root], store=store)

    assert second.files_linked == 0 and second.pyc.linked > 0
    a, b = venvs
    for pyc_a, st_a in pycs(a).items():
        assert st_a.st_ino == (b.path / pyc_a.relative_to(a.path)).stat().st_ino
    for venv in venvs:
        assert_imports_from_valid_pycs(venv)
    third = scan([root], store=store)
    assert (third.pyc.linked, third.pyc.stored, third.bytes_reclaimed) == (0, 0, 0)
    assert third.pyc.already_shared == second.pyc.linked + second.pyc.stored + (
        second.pyc.already_shared
    )


def test_no_share_pyc_keeps_pycs_private_and_valid(wheelhouse: Path, tmp_path: Path) -> None:
    root = tmp_path / "venvs"
    a, b = (make_venv(sys.executable, root / n, wheelhouse, "alpha==1.0") for n in ("a", "b"))
    inodes = {p: s.st_ino for v in (a, b) for p, s in pycs(v).items()}
    # b's pycs that are not valid for a's source, which the store object is now.
    a_sources = {p: source_of_pyc(a.path / p.relative_to(b.path)).stat() for p in pycs(b)}
    stale = [
        p
        for p, st in a_sources.items()
        if not valid_for_stat(parse_header(p.read_bytes()[:16]), st.st_mtime_ns, st.st_size)
    ]

    result = scan([root], store=tmp_path / "store", share_pyc=False)

    assert result.files_linked > 0
    assert (result.pyc.linked, result.pyc.stored) == (0, 0)
    assert result.pyc.rewritten == len(stale)
    for venv in (a, b):
        assert_imports_from_valid_pycs(venv, ALPHA)
        assert all(st.st_nlink == 1 for st in pycs(venv).values())
    # a's sources became the store objects, so its pycs were valid as they were.
    assert all(pycs(a)[p].st_ino == inodes[p] for p in pycs(a))


def test_stale_and_hash_based_pycs_are_left_as_they_are(wheelhouse: Path, tmp_path: Path) -> None:
    root = tmp_path / "venvs"
    a = make_venv(sys.executable, root / "a", wheelhouse, "alpha==1.0")
    b = make_venv(sys.executable, root / "b", wheelhouse, "alpha==1.0")
    # c's pycs are checked-hash pycs, as pip writes them under SOURCE_DATE_EPOCH.
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        c = make_venv(sys.executable, root / "c", wheelhouse, "alpha==1.0")
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    assert all(parse_header(p.read_bytes()[:16]).hash_based for p in pycs(c))
    # b's util.py gets a new mtime: its pyc is stale before the scan.
    util = b.file("alpha/util.py")
    os.utime(util, ns=(util.stat().st_atime_ns, util.stat().st_mtime_ns + 5_000_000_000))
    stale = next(p for p in pycs(b) if p.name.startswith("util."))
    stale_before = (stale.stat().st_ino, stale.read_bytes())
    hashed_before = {p: (s.st_ino, p.read_bytes()) for p, s in pycs(c).items()}

    result = scan([root], store=tmp_path / "store")

    assert result.pyc.skipped.get("pyc-stale") == 1
    assert result.pyc.skipped.get("pyc-hash-based") == len(hashed_before)
    assert (stale.stat().st_ino, stale.read_bytes()) == stale_before
    assert {p: (p.stat().st_ino, p.read_bytes()) for p in pycs(c)} == hashed_before
    assert util.stat().st_nlink > 1  # the source itself was shared all the same
    for venv in (a, c):
        assert_imports_from_valid_pycs(venv, ALPHA)


def test_dry_run_reports_the_pyc_figures_of_the_real_run(wheelhouse: Path, tmp_path: Path) -> None:
    root = tmp_path / "venvs"
    for name in ("a", "b", "c"):
        make_venv(sys.executable, root / name, wheelhouse, "alpha==1.0", "beta==1.0")
    before = {p: p.read_bytes() for p in root.rglob("*.pyc")}

    dry = scan([root], store=tmp_path / "store", dry_run=True)
    assert {p: p.read_bytes() for p in root.rglob("*.pyc")} == before
    real = scan([root], store=tmp_path / "store")

    assert dry.pyc.scanned > 0
    assert (dry.pyc, dry.bytes_reclaimed, dry.files_linked) == (
        real.pyc,
        real.bytes_reclaimed,
        real.files_linked,
    )


def test_interpreters_found() -> None:
    """The guarantee covers at least the interpreter that runs the tests."""
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in interpreters()


def test_the_checked_hash_header_is_what_each_interpreter_writes(tmp_path: Path) -> None:
    """Checked hash-based pycs of CPython 3.7 to 3.10 hash with SipHash-2-4, from 3.11 on
    with SipHash-1-3: this process computes the header of every interpreter of its own
    family, byte for byte, and says it cannot for the others."""
    pythons = list(interpreters(7).values())
    if len(pythons) < 3:
        pytest.skip("fewer than three CPython minor versions from 3.7 on are installed")
    source = tmp_path / "mod.py"
    source.write_text(f"VALUE = 1\nTEXT = {'0123456789abcdef' * 300!r}\n")
    compile_it = (
        "import py_compile, sys; mode = py_compile.PycInvalidationMode.CHECKED_HASH; "
        "print(sys.version_info >= (3, 11), py_compile.compile(sys.argv[1], "
        "cfile=sys.argv[2], invalidation_mode=mode, doraise=True))"
    )
    own_family = sys.version_info >= (3, 11)
    computed = 0
    for n, python in enumerate(pythons):
        cfile = tmp_path / f"mod.{n}.pyc"
        done = subprocess.run(
            [python, "-c", compile_it, str(source), str(cfile)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        header = cfile.read_bytes()[:16]
        same_family = done.stdout.split()[0] == str(own_family)
        assert can_hash(header[:4]) == same_family, python
        if same_family:
            assert checked_hash_header(header[:4], source.read_bytes()) == header, python
            computed += 1
    assert computed >= 1


def test_no_hash_is_claimed_for_an_unknown_magic_number() -> None:
    assert not can_hash(b"\x00\x00\r\n")
    assert not can_hash((9999).to_bytes(2, "little") + b"\r\n")
    assert not can_hash(importlib.util.MAGIC_NUMBER[:2] + b"xx")
    assert can_hash(importlib.util.MAGIC_NUMBER)


@pytest.mark.parametrize(
    "fraction_ns",
    [
        pytest.param(0, id="whole-second"),
        pytest.param(500_000_000, id="half"),
        pytest.param(999_999_900, id="rounds-up-as-a-float"),
    ],
)
def test_pyc_mtime_is_what_py_compile_writes(tmp_path: Path, fraction_ns: int) -> None:
    """CPython stamps int(st.st_mtime), a float: within ~240 ns of the next second it
    rounds up, and a header computed with integer division would be judged stale."""
    import py_compile

    source = tmp_path / "mod.py"
    source.write_text("VALUE = 1\n")
    mtime_ns = 1_700_000_000 * 10**9 + fraction_ns
    os.utime(source, ns=(mtime_ns, mtime_ns))
    pyc = Path(
        py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    )
    st = source.stat()
    header = parse_header(pyc.read_bytes()[:16])
    assert header.mtime == int(st.st_mtime) & 0xFFFFFFFF
    assert valid_for_stat(header, st.st_mtime_ns, st.st_size)


def test_a_new_pyc_object_keeps_the_extended_attributes_of_its_pyc(
    wheelhouse: Path, tmp_path: Path
) -> None:
    """When no venv has a pyc valid for the source object, the group's object is a copy
    of one venv's pyc with its header corrected; it must carry that pyc's extended
    attributes (ACLs, security labels), or linking the pyc to it would strip them."""
    root = tmp_path / "venvs"
    a = make_venv(sys.executable, root / "a", wheelhouse, "alpha==1.0")
    b = make_venv(sys.executable, root / "b", wheelhouse, "alpha==1.0")
    # a's util.py becomes the source object; a has no pyc for it, and its mtime is not
    # the one b's pyc records, so b's pyc is copied into a new object.
    util = a.file("alpha/util.py")
    os.utime(util, ns=(util.stat().st_atime_ns, util.stat().st_mtime_ns + 5_000_000_000))
    for pyc in pycs(a):
        if pyc.name.startswith("util."):
            pyc.unlink()
    (b_pyc,) = (p for p in pycs(b) if p.name.startswith("util."))
    try:
        os.setxattr(b_pyc, "user.venv-dedupe-test", b"b's label")
    except OSError as exc:
        pytest.skip(f"no user xattrs on this filesystem: {exc}")
    b_pyc_ino = b_pyc.stat().st_ino

    result = scan([root], store=tmp_path / "store")

    assert result.errors == ()
    assert b_pyc.stat().st_ino != b_pyc_ino  # linked to the new object...
    assert b_pyc.stat().st_nlink == 2
    assert os.getxattr(b_pyc, "user.venv-dedupe-test") == b"b's label"  # ...label and all
    assert valid(b_pyc)
    assert_imports_from_valid_pycs(b, ALPHA)


def patch_releases_of_311() -> list[str]:
    """CPython 3.11 executables of distinct patch releases (Debian's, pyenv's)."""
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found: dict[str, str] = {}
    for exe in ["/usr/bin/python3.11", *glob.glob(f"{pyenv_root}/versions/3.11.*/bin/python3")]:
        out = (
            subprocess.run(
                [exe, "-c", "import sys; print(sys.version.split()[0])"],
                capture_output=True,
                text=True,
                check=False,
            )
            if os.path.exists(exe)
            else None
        )
        if out is not None and out.returncode == 0:
            found.setdefault(out.stdout.strip(), exe)
    return [found[v] for v in sorted(found)]


def code_part(pyc: Path) -> bytes:
    return pyc.read_bytes()[16:]


def test_pycs_are_shared_only_between_venvs_of_one_interpreter_build(
    wheelhouse: Path, tmp_path: Path
) -> None:
    """3.11.2 and 3.11.7 share a magic number but not necessarily their compiler: each
    venv keeps the bytecode its own build wrote, and shares it with that build's venvs."""
    releases = patch_releases_of_311()
    if len(releases) < 2:
        pytest.skip(f"two CPython 3.11 patch releases are needed, found {releases}")
    old, new = releases[:2]
    root = tmp_path / "venvs"
    args = ("alpha==1.0", "beta==1.0")
    a1, a2 = (make_venv(old, root / n, wheelhouse, *args) for n in ("old-1", "old-2"))
    b1, b2 = (make_venv(new, root / n, wheelhouse, *args) for n in ("new-1", "new-2"))
    code = {p: code_part(p) for v in (a1, b1) for p in pycs(v)}

    result = scan([root], store=tmp_path / "store")

    assert result.pyc.not_shared == {}
    for pyc_a in pycs(a1):
        rel = pyc_a.relative_to(a1.path)
        old_ino, new_ino = pyc_a.stat().st_ino, (b1.path / rel).stat().st_ino
        assert (a2.path / rel).stat().st_ino == old_ino  # one build: one inode
        assert (b2.path / rel).stat().st_ino == new_ino
        assert old_ino != new_ino, rel  # two builds: two
        assert (a1.path / rel).stat().st_nlink == 3
        # The sources are one inode for all four venvs.
        source = source_of(a1.path / rel)
        assert source.stat().st_ino == (b1.path / source.relative_to(a1.path)).stat().st_ino
    for venv in (a1, b1):  # the bytecode each build wrote
        assert {p: code_part(p) for p in pycs(venv)} == {p: code[p] for p in pycs(venv)}
    for venv in (a1, a2, b1, b2):
        assert_imports_from_valid_pycs(venv)


def test_a_venv_whose_build_cannot_be_told_keeps_its_pycs_valid_and_private(
    wheelhouse: Path, tmp_path: Path
) -> None:
    root = tmp_path / "venvs"
    a, b = (make_venv(sys.executable, root / n, wheelhouse, "alpha==1.0") for n in ("a", "b"))
    interpreter = os.path.realpath(b.python)
    for exe in b.bin.glob("python*"):
        exe.unlink()  # a venv whose interpreter is gone: which build wrote its pycs?
    b_pycs = pycs(b)

    result = scan([root], store=tmp_path / "store")

    assert result.files_linked > 0
    assert result.pyc.not_shared == {"pyc-build-unknown": len(b_pycs)}
    os.symlink(interpreter, b.python)
    for pyc, st in pycs(b).items():
        assert st.st_nlink == 1 and valid(pyc)
        assert source_of(pyc).stat().st_nlink == 3  # its source was shared
    assert_imports_from_valid_pycs(b, ALPHA)
    second = scan([root], store=tmp_path / "store")  # now its build is known: shared
    assert second.pyc.linked == len(b_pycs)


def test_pycs_another_interpreter_wrote_are_kept_valid_and_private(
    wheelhouse: Path, tmp_path: Path
) -> None:
    """Pycs of another minor version in a venv (someone ran python3.12 over it): which
    3.12 build wrote them is unknown, so they are not shared, only kept valid."""
    this = "{}.{}".format(*sys.version_info[:2])
    other = next((exe for v, exe in sorted(interpreters().items()) if v != this), None)
    if other is None:
        pytest.skip("no second CPython minor version on this machine")
    root = tmp_path / "venvs"
    a, b = (make_venv(sys.executable, root / n, wheelhouse, "alpha==1.0") for n in ("a", "b"))
    for venv in (a, b):
        subprocess.run([other, "-m", "compileall", "-q", str(venv.file("alpha"))], check=True)
    foreign = {
        v: [p for p in pycs(v) if sys.implementation.cache_tag not in p.name] for v in (a, b)
    }
    assert all(foreign.values())

    result = scan([root], store=tmp_path / "store")

    assert result.pyc.not_shared == {"pyc-other-interpreter": len(foreign[a]) + len(foreign[b])}
    for venv in (a, b):
        for pyc in foreign[venv]:
            assert pyc.stat().st_nlink == 1 and valid(pyc)
        for pyc in set(pycs(venv)) - set(foreign[venv]):
            assert pyc.stat().st_nlink == 3  # this interpreter's: shared
