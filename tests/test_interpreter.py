"""Which interpreter build a venv runs: read from real interpreters and real venvs."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dedupe.interpreter import Build, Builds, dynamic_needs, python_version

PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def real_interpreters() -> list[str]:
    """The CPython executables of this machine: this one, Debian's, pyenv's."""
    found = {os.path.realpath(sys.executable)}
    found |= {os.path.realpath(p) for p in glob.glob("/usr/bin/python3.*") if p[-1].isdigit()}
    found |= {os.path.realpath(p) for p in glob.glob(str(PYENV / "3.*" / "bin" / "python3"))}
    return sorted(found)


def venv_at(path: Path, interpreter: str, *args: str) -> Path:
    subprocess.run([interpreter, "-m", "venv", "--without-pip", *args, str(path)], check=True)
    return path


def ldd_libpython(executable: str) -> list[str]:
    """The libpython the dynamic loader links the executable with, as ldd says."""
    out = subprocess.run(["ldd", executable], capture_output=True, text=True, check=False)
    return re.findall(r"^\s*(libpython\S+) =>", out.stdout, re.MULTILINE)


@pytest.mark.skipif(shutil.which("ldd") is None, reason="no ldd to compare with")
@pytest.mark.parametrize("executable", real_interpreters())
def test_the_libpython_needed_is_what_the_loader_links(executable: str) -> None:
    needs = dynamic_needs(Path(executable).read_bytes())
    assert needs is not None
    needed, _runpath = needs
    assert [n for n in needed if n.startswith("libpython")] == ldd_libpython(executable)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b'#!/bin/sh\nexec python3 "$@"\n', id="a-script"),
        pytest.param(b"\x7fELF\x02\x01" + b"\0" * 10, id="cut-short"),
        pytest.param(b"\x7fELF\x02\x01" + b"\xff" * 100, id="sections-beyond-the-end"),
        pytest.param(b"\x7fELF\x07\x01" + b"\0" * 100, id="unknown-class"),
    ],
)
def test_what_is_not_a_readable_elf_file_gives_none(data: bytes) -> None:
    assert dynamic_needs(data) is None


@pytest.mark.parametrize(
    ("tag", "version", "writes"),
    [
        pytest.param("cpython-311", (3, 11), True, id="its-own"),
        pytest.param("cpython-312", (3, 11), False, id="a-later-minor"),
        pytest.param("cpython-31", (3, 1), True, id="three-one"),
        pytest.param("cpython-311", (3, 1), False, id="not-a-prefix-match"),
        pytest.param("pypy39", (3, 9), True, id="pypy"),
        pytest.param("cpython-39-x", (3, 9), False, id="garbage"),
    ],
)
def test_a_build_writes_only_its_own_cache_tag(
    tag: str, version: tuple[int, int], writes: bool
) -> None:
    assert Build(version, "0" * 16).writes(tag) is writes


@pytest.mark.parametrize(
    ("config", "site_packages", "version"),
    [
        pytest.param({"version": "3.11.7"}, (), (3, 11), id="venv"),
        pytest.param({"version_info": "3.12.1.final.0"}, (), (3, 12), id="virtualenv"),
        pytest.param({}, ("/v/lib/python3.10/site-packages",), (3, 10), id="from-the-folder"),
        pytest.param({}, ("/v/lib/python3.13t/site-packages",), (3, 13), id="free-threaded"),
        pytest.param({"version": "unknown"}, ("/v/Lib/site-packages",), None, id="none"),
    ],
)
def test_the_minor_version_comes_from_pyvenv_cfg_or_the_folder(
    config: dict[str, str], site_packages: tuple[str, ...], version: tuple[int, int] | None
) -> None:
    assert python_version(config, site_packages) == version


def test_venvs_of_one_interpreter_have_one_build_even_when_copied(tmp_path: Path) -> None:
    builds = Builds()
    linked = venv_at(tmp_path / "linked", sys.executable)
    copied = venv_at(tmp_path / "copied", sys.executable, "--copies")
    assert os.path.islink(linked / "bin" / "python")
    assert not os.path.islink(copied / "bin" / "python")
    version = sys.version_info[:2]
    first, second = builds.of(str(linked), version), builds.of(str(copied), version)
    assert first is not None and first == second
    assert re.fullmatch(r"[0-9a-f]{16}", first.ident)


def pyenv_311() -> list[str]:
    return sorted(glob.glob(str(PYENV / "3.11.*" / "bin" / "python3.11")))


def two_patch_releases() -> tuple[str, str]:
    """Two CPython 3.11 builds of different patch releases (Debian's and pyenv's)."""
    found = {}
    for exe in ["/usr/bin/python3.11", *pyenv_311()]:
        if os.path.exists(exe):
            out = subprocess.run(
                [exe, "-c", "import sys; print(sys.version.split()[0])"],
                capture_output=True,
                text=True,
                check=False,
            )
            found.setdefault(out.stdout.strip(), exe)
    if len(found) < 2:
        pytest.skip(f"two 3.11 patch releases are needed, found {sorted(found)}")
    first, second = sorted(found)[:2]
    return found[first], found[second]


def test_patch_releases_of_one_minor_are_different_builds(tmp_path: Path) -> None:
    old, new = two_patch_releases()
    builds = Builds()
    a = builds.of(str(venv_at(tmp_path / "a", old)), (3, 11))
    b = builds.of(str(venv_at(tmp_path / "b", new)), (3, 11))
    assert a is not None and b is not None
    assert a.ident != b.ident


def test_a_venv_without_a_readable_interpreter_has_no_build(tmp_path: Path) -> None:
    builds = Builds()
    venv = venv_at(tmp_path / "v", sys.executable)
    for name in ("python", "python3", f"python3.{sys.version_info[1]}"):
        (venv / "bin" / name).unlink(missing_ok=True)
    assert builds.of(str(venv), (3, 11)) is None
    os.mkfifo(venv / "bin" / "python")  # never opened for reading: that would block
    assert builds.of(str(venv), (3, 11)) is None
    (venv / "bin" / "python").unlink()
    (venv / "bin" / "python").symlink_to("/nonexistent/python")
    assert builds.of(str(venv), (3, 11)) is None
    assert builds.of(str(venv_at(tmp_path / "w", sys.executable)), None) is None
