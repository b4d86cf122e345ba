"""Which distribution installed a venv file, and the command that reinstalls it."""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
from collections.abc import Container
from dataclasses import dataclass

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..discovery import Venv
from ..inventory import dist_infos, read_text
from ..records import RecordError, parse_record
from .results import Distribution

__all__ = ["Owner", "Owners", "distribution_of", "repair_command"]


def distribution_of(dist_info_name: str) -> Distribution:
    """Name and version from a .dist-info folder name (`name-version.dist-info`),
    normalised with packaging."""
    stem = dist_info_name.removesuffix(".dist-info")
    name, _, version = stem.partition("-")
    with contextlib.suppress(InvalidVersion):
        version = str(Version(version))
    return Distribution(str(canonicalize_name(name)), version)


@dataclass(frozen=True, slots=True)
class Owner:
    distribution: Distribution
    installer: str  # the dist-info's INSTALLER: "pip", "uv", ... or ""


# What uv writes itself in each install, never linked from its cache: no evidence of how
# it links files (console scripts, outside site-packages, are left out too).
_UV_WRITES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json"})


class Owners:
    """Which distribution installed each file of one venv, read from its RECORDs once."""

    def __init__(self, venv: Venv) -> None:
        self.venv = venv
        self._by_path: dict[str, Owner] | None = None
        self._uv_files: dict[Distribution, list[str]] = {}  # what uv may link from its cache
        self.has_pip = False

    def _load(self) -> dict[str, Owner]:
        by_path: dict[str, Owner] = {}
        for site_packages in self.venv.site_packages:
            for dist_info in dist_infos(site_packages):
                folder = os.path.join(site_packages, dist_info)
                try:
                    text = read_text(os.path.join(folder, "RECORD"))
                except OSError:
                    continue
                try:
                    entries = parse_record(text.splitlines())
                except RecordError as exc:
                    entries = exc.entries
                try:
                    installer = read_text(os.path.join(folder, "INSTALLER"), 1024).strip()
                except OSError:
                    installer = ""
                owner = Owner(distribution_of(dist_info), installer)
                self.has_pip |= owner.distribution.name == "pip"
                uv_files = self._uv_files.setdefault(owner.distribution, [])
                for entry in entries:
                    path = os.path.normpath(os.path.join(site_packages, entry.path))
                    by_path.setdefault(path, owner)
                    inside = not entry.path.startswith(("..", "/"))
                    if installer == "uv" and inside and os.path.basename(path) not in _UV_WRITES:
                        uv_files.append(path)
        return by_path

    def uv_link_mode(self, distribution: Distribution, object_inodes: Container[int]) -> str | None:
        """How uv put the distribution's files in, where its files show it: "hardlink"
        when one that is no store object has other names (uv's cache), "copy" when every
        one of them is private (copy, or clone on a copy-on-write filesystem), None when
        all are store objects now, or none is left to look at."""
        if self._by_path is None:
            self._by_path = self._load()
        private = False
        for path in self._uv_files.get(distribution, []):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_ino in object_inodes:
                continue
            if st.st_nlink > 1:
                return "hardlink"
            private = True
        return "copy" if private else None

    def of(self, path: str) -> Owner | None:
        if self._by_path is None:
            self._by_path = self._load()
        owner = self._by_path.get(path)
        folder, name = os.path.split(path)
        if owner is None and os.path.basename(folder) == "__pycache__":
            # A pyc belongs to its source's distribution (uv does not list pycs in RECORD).
            source = os.path.join(os.path.dirname(folder), name.split(".", 1)[0] + ".py")
            owner = self._by_path.get(source)
        return owner


def repair_command(
    venv_root: str, owner: Owner, has_pip: bool, uv_link_mode: str | None = None
) -> tuple[str, str | None]:
    """The command that reinstalls one distribution in one venv, giving it fresh files
    (the installer unlinks the damaged names rather than writing through them), and what
    to know before running it. uv's default links files from its cache: a venv made with
    `--link-mode copy` is asked for the same mode, where its files show it."""
    python = shlex.quote(os.path.join(venv_root, "bin", "python"))
    requirement = shlex.quote(str(owner.distribution))
    if owner.installer == "uv":
        command = f"uv pip install --python {python} --reinstall --no-deps"
        if uv_link_mode is not None:
            return f"{command} --link-mode {uv_link_mode} {requirement}", None
        return f"{command} {requirement}", (
            "uv links files from its cache unless told otherwise, so this shares the "
            "venv's files with uv's cache; the venv does not show how uv installed it: "
            "add --link-mode copy if it was made so"
        )
    if has_pip:
        return f"{python} -m pip install --force-reinstall --no-deps {requirement}", None
    # A venv made --without-pip (or by uv) is served by an outer pip >= 22.3.
    return (
        f"python3 -m pip --python {python} install --force-reinstall --no-deps {requirement}",
        None,
    )
