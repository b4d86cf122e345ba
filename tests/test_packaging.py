"""The wheel holds every package of dedupe/ (an editable install would hide a miss)."""

from __future__ import annotations

import fnmatch

import pytest
from helpers import REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")


def test_every_package_folder_is_included_in_the_distribution() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in (REPO_ROOT / "dedupe").rglob("__init__.py")
    ]
    assert "dedupe.cli" in packages
    missing = [p for p in packages if not any(fnmatch.fnmatch(p, pat) for pat in include)]
    assert missing == []


def test_the_console_script_points_at_an_importable_function() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    module, _, function = config["project"]["scripts"]["venv-dedupe"].partition(":")
    imported = __import__(module, fromlist=[function])
    assert callable(getattr(imported, function))
