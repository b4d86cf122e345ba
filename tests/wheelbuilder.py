"""Builds the small but real wheels that the test venvs are installed from.

The wheels are written with :mod:`zipfile` so the tests need no build backend and no
network. Their contents are chosen for what the tests assert:

* every module is 8-20 KiB of distinct, importable source, so linking frees whole
  blocks and no two different files happen to have equal bytes;
* ``alpha/util.py`` and ``alpha/data/table.csv`` are byte-identical in alpha 1.0 and
  2.0 (shared by every venv), ``alpha/core.py`` and ``alpha/__init__.py`` differ;
* ``alpha/py.typed`` is empty (a zero-byte file is never worth linking);
* ``alpha-cli = alpha.cli:main`` is a console script (its shebang names the venv).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Distribution:
    """The files of one wheel, by their path inside the wheel."""

    name: str
    version: str
    files: dict[str, bytes]
    requires: tuple[str, ...] = ()
    console_scripts: tuple[str, ...] = ()

    @property
    def dist_info(self) -> str:
        return f"{self.name}-{self.version}.dist-info"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-py3-none-any.whl"


def record_hash(data: bytes, algorithm: str = "sha256") -> str:
    """The RECORD form of a digest: ``alg=urlsafe-base64-without-padding``."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _padding_table(seed: str, size: int) -> str:
    """Python source for a tuple of random words, about ``size`` bytes long.

    Seeded by a string so every build gives the same bytes (the wheelhouse is rebuilt
    per session; the tests compare files between venvs, never against stored values).
    """
    rng = random.Random(seed)
    lines = ["_TABLE = ("]
    length = len(lines[0]) + 1
    while length < size:
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(60))
        line = f"    {word!r},"
        lines.append(line)
        length += len(line) + 1
    lines.append(")")
    return "\n".join(lines) + "\n"


def _module(seed: str, size: int, body: str = "") -> bytes:
    source = f'"""Module {seed} of the venv-dedupe test wheels."""\n\n{body}\n'
    source += _padding_table(seed, size - len(source) - 1)
    return source.encode("utf-8")


def _csv_data(seed: str, rows: int) -> bytes:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["key", "value", "weight"])
    for row in range(rows):
        writer.writerow([f"k{row:05d}", rng.getrandbits(64), rng.random()])
    return out.getvalue().encode("ascii")


def alpha(version: str) -> Distribution:
    files = {
        "alpha/__init__.py": (
            f'"""alpha {version}: a test package."""\n\n__version__ = {version!r}\n'
        ).encode(),
        # Differs between versions: D's copy must keep its own inode.
        "alpha/core.py": _module(
            f"alpha.core {version}",
            16 * 1024,
            "def answer() -> int:\n    return 42\n\n\ndef table_size() -> int:\n"
            "    return len(_TABLE)\n",
        ),
        # Identical in 1.0 and 2.0 on purpose: shared by every venv after a scan.
        "alpha/util.py": _module(
            "alpha.util",
            12 * 1024,
            "def double(value: int) -> int:\n    return 2 * value\n",
        ),
        "alpha/cli.py": _module(
            f"alpha.cli {version}",
            9 * 1024,
            "import alpha\nfrom alpha import core, util\n\n\n"
            "def main() -> int:\n"
            "    print('alpha-cli', alpha.__version__, core.answer(), util.double(21))\n"
            "    return 0\n",
        ),
        # Identical in 1.0 and 2.0 on purpose.
        "alpha/data/table.csv": _csv_data("alpha.data", 400),
        # Zero bytes: never worth sharing.
        "alpha/py.typed": b"",
    }
    return Distribution(
        name="alpha",
        version=version,
        files=files,
        console_scripts=("alpha-cli = alpha.cli:main",),
    )


def beta(version: str) -> Distribution:
    files = {
        "beta/__init__.py": (
            f'"""beta {version}: imports alpha."""\n\nimport alpha\n\n__version__ = {version!r}\n'
        ).encode(),
        "beta/engine.py": _module(
            f"beta.engine {version}",
            14 * 1024,
            "from alpha import core\n\n\ndef run() -> int:\n    return core.answer() + 1\n",
        ),
    }
    return Distribution(name="beta", version=version, files=files, requires=("alpha",))


def _metadata(dist: Distribution) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {dist.name}",
        f"Version: {dist.version}",
        f"Summary: {dist.name} test wheel for venv-dedupe",
    ]
    lines += [f"Requires-Dist: {requirement}" for requirement in dist.requires]
    return ("\n".join(lines) + "\n").encode()


def _wheel_file() -> bytes:
    return (
        b"Wheel-Version: 1.0\n"
        b"Generator: venv-dedupe-tests\n"
        b"Root-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )


def _entry_points(dist: Distribution) -> bytes:
    return ("[console_scripts]\n" + "".join(f"{s}\n" for s in dist.console_scripts)).encode()


def build_wheel(dist: Distribution, wheelhouse: Path) -> Path:
    """Write ``dist`` as a wheel into ``wheelhouse`` with a correct RECORD."""
    contents = dict(dist.files)
    contents[f"{dist.dist_info}/METADATA"] = _metadata(dist)
    contents[f"{dist.dist_info}/WHEEL"] = _wheel_file()
    if dist.console_scripts:
        contents[f"{dist.dist_info}/entry_points.txt"] = _entry_points(dist)

    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in contents.items():
        writer.writerow([path, record_hash(data), len(data)])
    writer.writerow([f"{dist.dist_info}/RECORD", "", ""])
    contents[f"{dist.dist_info}/RECORD"] = record.getvalue().encode()

    wheel_path = wheelhouse / dist.filename
    with zipfile.ZipFile(wheel_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in contents.items():
            # A fixed date keeps the wheel bytes reproducible.
            info = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return wheel_path


ALL_DISTRIBUTIONS: tuple[Distribution, ...] = (alpha("1.0"), alpha("2.0"), beta("1.0"))


def build_wheelhouse(wheelhouse: Path) -> dict[str, Path]:
    """Build every test wheel into ``wheelhouse``; map ``name==version`` to the wheel."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    return {
        f"{dist.name}=={dist.version}": build_wheel(dist, wheelhouse) for dist in ALL_DISTRIBUTIONS
    }
