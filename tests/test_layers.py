"""Imports point one way: each module of dedupe imports only modules of lower layers, and
the modules inside a package import each other without cycles. Read from the source with
ast, so this needs no import of the package."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dedupe"

# Lowest first. A module may import from the layers below its own, never from its own
# layer or above: the pipeline reads bottom-up (files, the store, what a venv holds, the
# decisions, who carries them out, the commands, how results read, the command line).
LAYERS = [
    {"quiet"},  # how every other module opens a venv's file to read it
    {
        "_version",
        "errors",
        "reasons",
        "problems",
        "text",
        "lockfds",
        "interpreter",
        "processes",
    },
    {"cow"},
    {"records", "bytecode", "hashing", "discovery", "caches", "modes"},
    {"tree", "store"},
    {"listing"},
    {"census", "memo", "journal", "inventory", "proof", "decisions"},
    {"plan", "execute", "workers"},
    {"link"},
    {"scan", "maintenance"},
    {"clone"},
    {"report"},
    {"cli"},
    {"__init__", "__main__"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# Inside a package the same rule, where its order is written down. The executor, lowest
# first: what every change is made of, the store's own files, freeing displaced files,
# the atomic swaps, files written like another, and the executors (another way of
# sharing, such as reflinks, joins hardlinks on the top layer). The clone's share steps
# (sharing) use none of them. Its __init__ only gathers them.
INNER_LAYERS = {
    "link": [
        {"steps", "objects", "sharing"},
        {"unlinker"},
        {"swap"},
        {"copies"},
        {"hardlinks"},
        {"reflinks"},
    ],
    # The clone: its vocabulary and shebangs and pyvenv.cfg; adopting SRC's files; the
    # plan of DST; making it; the whole run.
    "clone": [{"result", "scripts", "venvcfg"}, {"adopt"}, {"plan"}, {"build"}, {"run"}],
    # The planner: its model of the store, the pyc decisions on it, the source decisions.
    "plan": [{"model"}, {"pycs"}, {"planner"}],
}


def _modules() -> dict[str, Path]:
    """'scan.run' -> its file, for every module of the package ('__init__' for its own)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if len(parts) > 1 and parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """The package-relative modules that a module imports ('store', 'scan.result')."""
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name in ("__init__", "__main__"):
        here = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:
                found.update(".".join([*base, alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            found.update(m[len("dedupe.") :] for m in modules if m and m.startswith("dedupe."))
    return found


def test_every_module_has_a_layer() -> None:
    tops = {name.split(".")[0] for name in _modules()}
    assert tops - LAYER_OF.keys() == set()


@pytest.mark.parametrize("name", sorted(_modules()))
def test_imports_point_down(name: str) -> None:
    path = _modules()[name]
    top = name.split(".")[0]
    upward = sorted(
        target
        for target in _imports(name, path)
        if target.split(".")[0] != top and LAYER_OF[target.split(".")[0]] >= LAYER_OF[top]
    )
    assert upward == [], f"{name} (layer {LAYER_OF[top]}) imports {upward}"


def test_modules_of_a_package_import_each_other_without_cycles() -> None:
    modules = _modules()
    graph = {
        name: {t for t in _imports(name, path) if t in modules and t != name}
        for name, path in modules.items()
    }
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


@pytest.mark.parametrize("package", sorted(INNER_LAYERS))
def test_every_module_of_a_layered_package_has_a_layer(package: str) -> None:
    inner = {name.split(".")[1] for name in _modules() if name.startswith(f"{package}.")}
    assert inner == set().union(*INNER_LAYERS[package])


@pytest.mark.parametrize(
    "name",
    sorted(n for n in _modules() if n.split(".")[0] in INNER_LAYERS and "." in n),
)
def test_imports_inside_a_package_point_down(name: str) -> None:
    package, module = name.split(".")[:2]
    layer_of = {m: i for i, layer in enumerate(INNER_LAYERS[package]) for m in layer}
    upward = sorted(
        target
        for target in _imports(name, _modules()[name])
        if target.startswith(f"{package}.") and layer_of[target.split(".")[1]] >= layer_of[module]
    )
    assert upward == [], f"{name} (layer {layer_of[module]} of {package}) imports {upward}"
