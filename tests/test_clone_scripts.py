"""dedupe.clone.scripts and dedupe.clone.venvcfg: the shebang forms installers write, moved
to DST's interpreter, and the pyvenv.cfg keys a clone reads. Pure: bytes and text in."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dedupe.clone.scripts import rewrite_script, shebang
from dedupe.clone.venvcfg import parse_cfg
from dedupe.errors import CloneError

SRC_BIN = "/srv/venvs/base/bin"
BODY = b"# -*- coding: utf-8 -*-\nimport sys\nprint(sys.argv[0])\n"
LONG = "/srv/" + "x" * 130 + "/bin"


def _trampoline(interpreter: str) -> bytes:
    quoted = f'"{interpreter}"' if " " in interpreter else interpreter
    return f"#!/bin/sh\n'''exec' {quoted} \"$0\" \"$@\"\n' '''\n".encode()


@pytest.mark.parametrize(
    ("script", "new_bin", "expected"),
    [
        pytest.param(
            b"#!/srv/venvs/base/bin/python\n" + BODY,
            "/srv/venvs/job/bin",
            b"#!/srv/venvs/job/bin/python\n" + BODY,
            id="pip-python",
        ),
        pytest.param(
            b"#!/srv/venvs/base/bin/python3.11\n" + BODY,
            "/srv/venvs/job/bin",
            b"#!/srv/venvs/job/bin/python3.11\n" + BODY,
            id="python3.11",
        ),
        pytest.param(
            _trampoline(f"{SRC_BIN}/python") + BODY,
            "/srv/venvs/job/bin",
            b"#!/srv/venvs/job/bin/python\n" + BODY,
            id="trampoline-to-short",
        ),
        pytest.param(
            b"#!/srv/venvs/base/bin/python3\n" + BODY,
            "/srv/my venvs/job/bin",
            _trampoline("/srv/my venvs/job/bin/python3") + BODY,
            id="space-to-trampoline",
        ),
        pytest.param(
            b"#!/srv/venvs/base/bin/python\n" + BODY,
            LONG,
            _trampoline(f"{LONG}/python") + BODY,
            id="long-to-trampoline",
        ),
    ],
)
def test_the_interpreter_moves_to_dst(script: bytes, new_bin: str, expected: bytes) -> None:
    assert rewrite_script(script, (SRC_BIN,), new_bin) == expected


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(b"#!/usr/bin/env python3\n" + BODY, id="env"),
        pytest.param(b"#!/other/venv/bin/python\n" + BODY, id="another-venv"),
        pytest.param(b"\x7fELF\x02\x01\x01", id="binary"),
        pytest.param(b"#!/srv/venvs/base/bin/python", id="one-line"),
        pytest.param(b"#!/bin/sh\necho hello\n", id="plain-sh"),
    ],
)
def test_scripts_naming_no_src_interpreter_are_left(script: bytes) -> None:
    assert rewrite_script(script, (SRC_BIN,), "/srv/venvs/job/bin") is None


def test_the_trampoline_runs_an_interpreter_in_a_folder_with_spaces(tmp_path: Path) -> None:
    folder = tmp_path / "a folder" / "bin"
    folder.mkdir(parents=True)
    fake = folder / "python"
    fake.write_text('#!/bin/sh\necho "ran $1"\n')
    fake.chmod(0o755)
    script = tmp_path / "tool"
    script.write_bytes(shebang(str(fake)) + b"print('never: the fake python only echoes')\n")
    script.chmod(0o755)
    done = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"ran {script}"


def test_pyvenv_cfg_keys() -> None:
    cfg = parse_cfg(
        "home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.11.7\n"
        "executable = /usr/bin/python3.11\nprompt = 'my env'\n"
    )
    assert cfg.home == "/usr/bin" and cfg.system_site_packages
    assert cfg.version == "3.11.7" and cfg.executable == "/usr/bin/python3.11"
    assert cfg.prompt == "my env"
    assert parse_cfg("home = /usr/bin\n").prompt is None


def test_pyvenv_cfg_without_home_is_no_venv() -> None:
    with pytest.raises(CloneError, match="no 'home'"):
        parse_cfg("version = 3.11.7\n")
