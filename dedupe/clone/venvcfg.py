"""SRC's pyvenv.cfg (its base interpreter and options), and DST's venv made from them as
`python -m venv --without-pip` makes one, under a temp name but naming DST's final path.

Parsers take text, not paths: parse_cfg(text) reads what `venv` writes.
"""

from __future__ import annotations

import ast
import contextlib
import os
import subprocess
import sys
import venv
from dataclasses import dataclass

from ..errors import CloneError

__all__ = ["VenvConfig", "base_interpreter", "make_venv", "parse_cfg"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VenvConfig:
    home: str
    executable: str | None
    version: str | None
    system_site_packages: bool
    prompt: str | None
    command: str | None = None  # how venv was run (3.11+): its last word is the venv's path


def parse_cfg(text: str) -> VenvConfig:
    """The keys of a pyvenv.cfg that a clone needs; CloneError when it has no `home`."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    if not values.get("home"):
        raise CloneError("its pyvenv.cfg has no 'home' key: not a venv")
    prompt = values.get("prompt")
    if prompt and prompt[0] == prompt[-1] and prompt[0] in "'\"" and len(prompt) > 1:
        with contextlib.suppress(ValueError, SyntaxError):
            prompt = str(ast.literal_eval(prompt))  # venv writes repr(prompt)
    return VenvConfig(
        home=values["home"],
        executable=values.get("executable") or values.get("base-executable"),
        version=values.get("version") or values.get("version_info"),
        system_site_packages=values.get("include-system-site-packages", "").lower() == "true",
        prompt=prompt or None,
        command=values.get("command") or None,
    )


def base_interpreter(cfg: VenvConfig) -> str:
    """The base interpreter that made the venv: `executable`, else the one in `home` of
    its version (as `python -m venv` names them)."""
    names = ["python3", "python"]
    if cfg.version:
        minor = ".".join(cfg.version.split(".")[:2])
        names.insert(0, f"python{minor}")
    candidates = [cfg.executable] if cfg.executable else []
    candidates += [os.path.join(cfg.home, name) for name in names]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise CloneError(
        f"its base interpreter is gone: none of {candidates!r} (from pyvenv.cfg) exists"
    )


def make_venv(base: str, cfg: VenvConfig, temp: str, final: str, *, symlinks: bool) -> None:
    """A venv without pip at temp, by base's own venv module, whose pyvenv.cfg and
    activate scripts name final (where temp is renamed to at the end), not temp."""
    if _is_our_base(base):
        # The interpreter running us is base's: its venv module, in this process, makes
        # what `base -m venv` makes, without starting an interpreter (a tenth of a clone).
        builder = venv.EnvBuilder(
            system_site_packages=cfg.system_site_packages, symlinks=symlinks, prompt=cfg.prompt
        )
        builder.create(temp)
        _rename_inside(temp, final, (os.fsencode(f"{sys.executable} -m venv"), base))
        return
    argv = [base, "-m", "venv", "--without-pip", "--symlinks" if symlinks else "--copies"]
    if cfg.system_site_packages:
        argv.append("--system-site-packages")
    if cfg.prompt is not None:
        argv += ["--prompt", cfg.prompt]
    # The temp folder exists (made empty beside DST): venv fills it.
    done = subprocess.run(
        [*argv, temp], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise CloneError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")
    _rename_inside(temp, final)


def _is_our_base(base: str) -> bool:
    ours = getattr(sys, "_base_executable", sys.executable)
    return os.path.realpath(ours) == os.path.realpath(base)


def _rename_inside(temp: str, final: str, command: tuple[bytes, str] | None = None) -> None:
    """Say final where venv wrote temp: in pyvenv.cfg (its `command`) and in the activate
    scripts (VIRTUAL_ENV, and the prompt that defaults to the folder's name). command:
    (what pyvenv.cfg's `command` starts with, the interpreter it is to name)."""
    pairs = [
        (os.fsencode(temp), os.fsencode(final)),
        (os.fsencode(os.path.basename(temp)), os.fsencode(os.path.basename(final))),
    ]
    if command is not None:
        written, base = command
        pairs.insert(0, (b"command = " + written, os.fsencode(f"command = {base} -m venv")))
    bin_folder = os.path.join(temp, "bin")
    paths = [os.path.join(temp, "pyvenv.cfg")]
    paths += [os.path.join(bin_folder, name) for name in sorted(os.listdir(bin_folder))]
    for path in paths:
        if os.path.islink(path) or not os.path.isfile(path):
            continue  # bin/python and its symlinks name the base interpreter
        with open(path, "rb") as f:
            data = f.read()
        new = data
        for old, replacement in pairs:
            new = new.replace(old, replacement)
        if new != data:
            with open(path, "wb") as f:
                f.write(new)
