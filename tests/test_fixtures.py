"""The fixtures themselves: valid wheels, working venvs, snapshots that see changes.

When these fail, the other tests' failures say nothing about venv-dedupe.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import py_compile
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import MakeVenv, run_console_script, run_python, snapshot, snapshot_diff
from wheelbuilder import ALL_DISTRIBUTIONS, Distribution


@pytest.mark.parametrize("dist", ALL_DISTRIBUTIONS, ids=lambda d: f"{d.name}-{d.version}")
def test_wheel_record_matches_its_files(wheelhouse: Path, dist: Distribution) -> None:
    with zipfile.ZipFile(wheelhouse / dist.filename) as wheel:
        names = set(wheel.namelist())
        record = wheel.read(f"{dist.dist_info}/RECORD").decode()
        rows = list(csv.reader(io.StringIO(record)))
        assert {row[0] for row in rows} == names
        for path, hash_field, size in rows:
            if path.endswith("/RECORD"):
                assert (hash_field, size) == ("", "")
                continue
            data = wheel.read(path)
            algorithm, _, encoded = hash_field.partition("=")
            assert algorithm == "sha256"
            digest = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            assert digest == hashlib.sha256(data).digest(), path
            assert int(size) == len(data), path


def test_module_sizes_and_sharing_between_versions() -> None:
    """The scan tests rely on these facts about the wheels' contents."""
    one, two = (d for d in ALL_DISTRIBUTIONS if d.name == "alpha")
    for dist in (one, two):
        for module in ("alpha/core.py", "alpha/util.py", "alpha/cli.py"):
            assert 8 * 1024 <= len(dist.files[module]) <= 20 * 1024, module
        assert dist.files["alpha/py.typed"] == b""
    for same in ("alpha/util.py", "alpha/data/table.csv"):
        assert one.files[same] == two.files[same]
    for different in ("alpha/core.py", "alpha/cli.py", "alpha/__init__.py"):
        assert one.files[different] != two.files[different]
    # Apart from those two, no two files of the wheelhouse have equal bytes by accident.
    contents = [data for dist in ALL_DISTRIBUTIONS for data in dist.files.values() if data]
    assert len(set(contents)) == len(contents) - 2


def test_pip_makes_a_working_venv(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "venv", "alpha==1.0", "beta==1.0")
    assert run_console_script(venv, "alpha-cli").split() == ["alpha-cli", "1.0", "42", "42"]
    assert run_python(venv, "import beta.engine; print(beta.engine.run())").strip() == "43"
    record = venv.record("alpha-1.0.dist-info").read_text()
    # pip's RECORD as DESIGN.md describes it: the console script one level up, .pyc files
    # with empty hash and size, INSTALLER and REQUESTED present.
    assert "../../../bin/alpha-cli,sha256=" in record
    tag = sys.implementation.cache_tag
    assert f"alpha/__pycache__/core.{tag}.pyc,," in record
    assert venv.file(f"alpha/__pycache__/core.{tag}.pyc").exists()
    assert (venv.site_packages / "alpha-1.0.dist-info" / "INSTALLER").read_text() == "pip\n"


def test_the_venvs_pip_reads_no_pip_config(
    make_venv: MakeVenv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every venv is filled by helpers.pip, whose PIP_ENV points pip's config file at
    os.devnull: a pip.conf of the user or of the machine must not change what a venv
    holds. Here the user's asks for --no-deps; beta, which requires alpha, still gets it."""
    config = tmp_path / "config"
    (config / "pip").mkdir(parents=True)
    (config / "pip" / "pip.conf").write_text("[install]\nno-deps = yes\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    venv = make_venv(tmp_path / "venv", "beta==1.0")
    installed = sorted(p.name for p in venv.site_packages.glob("*.dist-info"))
    assert installed == ["alpha-2.0.dist-info", "beta-1.0.dist-info"]


def _compile(source: str, source_path: Path, pyc_path: Path) -> bytes:
    """A timestamp pyc of ``source`` that names ``source_path`` as its co_filename."""
    source_path.write_text(source)
    py_compile.compile(str(source_path), cfile=str(pyc_path), doraise=True)
    return pyc_path.read_bytes()


def test_snapshot_sees_changed_bytes_type_and_mode(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"one")
    (tmp_path / "link").symlink_to("file")
    before = snapshot(tmp_path)
    (tmp_path / "file").write_bytes(b"two")
    assert snapshot_diff(before, snapshot(tmp_path)) == [
        f"changed: file: {before['file']} -> {snapshot(tmp_path)['file']}"
    ]
    (tmp_path / "file").write_bytes(b"one")
    os.chmod(tmp_path / "file", 0o600)
    assert len(snapshot_diff(before, snapshot(tmp_path))) == 1
    os.chmod(tmp_path / "file", before["file"].permissions)
    (tmp_path / "link").unlink()
    (tmp_path / "link").write_bytes(b"one")  # a regular file where a symlink was
    assert len(snapshot_diff(before, snapshot(tmp_path))) == 1


def test_snapshot_compares_pycs_by_code_not_by_embedded_path(tmp_path: Path) -> None:
    """Sharing a pyc across venvs changes its embedded source path; that alone is no change.

    Different code, though, is: the snapshot must not be blind to a wrong pyc.
    """
    pyc = tmp_path / "mod.pyc"
    _compile("def f():\n    return 1\n", tmp_path / "venv1.py", pyc)
    before = snapshot(tmp_path)
    # The same source compiled for another venv's path.
    _compile("def f():\n    return 1\n", tmp_path / "venv2.py", pyc)
    assert snapshot_diff(before, snapshot(tmp_path)) == ["new: venv2.py"]
    _compile("def f():\n    return 2\n", tmp_path / "venv1.py", pyc)
    assert any(
        line.startswith("changed: mod.pyc") for line in snapshot_diff(before, snapshot(tmp_path))
    )
