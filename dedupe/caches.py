"""Where installers keep the caches that venv files are hardlinks of (uv, conda, pdm,
poetry), and how many names of given inodes each of them holds."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["NamesIn", "Whereabouts", "cache_folders", "find_names"]


@dataclass(frozen=True, slots=True)
class NamesIn:
    folder: str  # a cache's folder one level down, as `uv` or `conda` lay them out
    names: int


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """Where the names of some inodes are that the venvs looked at do not hold."""

    found: tuple[NamesIn, ...]  # by folder, most names first
    not_found: int  # in none of the caches looked at: elsewhere, not found
    looked_in: tuple[str, ...]  # the cache folders walked

    @property
    def names(self) -> int:
        return sum(n.names for n in self.found) + self.not_found


def cache_folders(env: Mapping[str, str] | None = None) -> list[str]:
    """The cache folders of uv, conda, pdm and poetry for the user running this, the ones
    that exist, each once: the only places looked in for names outside the roots."""
    env = os.environ if env is None else env
    home = env.get("HOME") or os.path.expanduser("~")
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    candidates = [
        env.get("UV_CACHE_DIR") or os.path.join(xdg, "uv"),
        *(p for p in env.get("CONDA_PKGS_DIRS", "").split(",") if p),
        *(os.path.join(home, d, "pkgs") for d in (".conda", "miniconda3", "anaconda3")),
        *(os.path.join(home, d, "pkgs") for d in ("miniforge3", "mambaforge")),
        env.get("PDM_CACHE_DIR") or os.path.join(xdg, "pdm"),
        env.get("POETRY_CACHE_DIR") or os.path.join(xdg, "pypoetry"),
    ]
    found: dict[str, str] = {}
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.isdir(real):
            found.setdefault(real, os.path.abspath(path))
    return list(found.values())


def find_names(wanted: Mapping[tuple[int, int], int], folders: list[str]) -> Whereabouts:
    """How many of the names wanted ((device, inode) -> names to find) each folder holds,
    grouped by the folder's subfolders. A folder is walked only for the inodes of its own
    device; symlinks are never followed; the walk stops once every name is found."""
    left: dict[int, dict[int, int]] = {}
    for (device, ino), names in wanted.items():
        if names > 0:
            left.setdefault(device, {})[ino] = names
    found: Counter[str] = Counter()
    walked = []
    for top in folders:
        try:
            device = os.stat(top).st_dev
        except OSError:
            continue
        if left.get(device):
            walked.append(top)
            _walk(top, device, left[device], found)
    return Whereabouts(
        found=tuple(NamesIn(f, n) for f, n in sorted(found.items(), key=lambda kv: -kv[1])),
        not_found=sum(n for inodes in left.values() for n in inodes.values()),
        looked_in=tuple(walked),
    )


def _walk(top: str, device: int, left: dict[int, int], found: Counter[str]) -> None:
    """Count in found, by top's subfolder, the names under top of the inodes in left:
    the inode numbers come from the listings (d_ino), so no file is stat'ed."""
    stack = [(top, top)]
    while stack and left:
        folder, group = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.stat(follow_symlinks=False).st_dev == device:
                        stack.append((entry.path, entry.path if folder == top else group))
                    continue
                ino = entry.inode()
                if ino in left and entry.is_file(follow_symlinks=False):
                    found[group] += 1
                    left[ino] -= 1
                    if not left[ino]:
                        del left[ino]
            except OSError:
                continue
