"""Start-up cost: `--help` and `--version` load argparse-level code, not the machinery."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from helpers import REPO_ROOT

# What a scan needs and parsing does not: our machinery and our third-party imports.
MACHINERY = {
    "dedupe.scan",
    "dedupe.maintenance",
    "dedupe.store",
    "dedupe.link",
    "dedupe.plan",
    "dedupe.inventory",
    "dedupe.memo",
    "dedupe.report",
    "dedupe.tree",
    "dedupe.execute",
    "dedupe.census",
    "dedupe.proof",
    "xxhash",
    "tqdm",
    "packaging",
}

# Parse argv as the console script does, then list the modules loaded by then.
PROBE = """
import json, sys
from dedupe.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = None
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_after(*argv: str) -> tuple[object, set[str], str]:
    """The exit code of parsing argv (None when a command ran), the modules loaded, and
    what was printed before them."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    *printed, last = out.splitlines()
    found = json.loads(last)
    return found["code"], set(found["modules"]), "\n".join(printed)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["--version"], id="version"),
        *(
            pytest.param([command, "--help"], id=f"{command}-help")
            for command in ("scan", "status", "verify", "detach", "gc")
        ),
        pytest.param(["scan", "--jobs", "x"], id="usage-error"),
    ],
)
def test_parsing_loads_no_machinery(argv: list[str]) -> None:
    code, modules, _printed = loaded_after(*argv)
    assert code in (0, 2)
    assert sorted(MACHINERY & modules) == []


def test_a_command_that_runs_loads_what_it_needs(tmp_path: Path) -> None:
    code, modules, _printed = loaded_after("gc", "--dry-run", "--store", str(tmp_path / "none"))
    assert code is None
    assert "dedupe.maintenance" in modules


def test_library_names_resolve_lazily() -> None:
    code = (
        "import sys, dedupe\n"
        "assert 'dedupe.scan' not in sys.modules\n"
        "import dedupe.maintenance\n"  # binds the submodule dedupe.scan on the package
        "from dedupe import scan, ScanResult, status\n"
        "assert callable(scan) and scan.__module__ == 'dedupe.scan', scan\n"
        "assert ScanResult is dedupe.scan.__globals__['ScanResult']\n"
        "assert sorted(set(dedupe.__all__) - set(dir(dedupe))) == []\n"
        "print(all(getattr(dedupe, n) is not None for n in dedupe.__all__))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.split() == ["True"]


def test_version_names_the_installed_distribution() -> None:
    import dedupe

    code, _modules, printed = loaded_after("--version")
    assert code == 0
    assert printed == f"venv-dedupe {version('venv-dedupe')}"
    assert dedupe.__version__ == version("venv-dedupe")
