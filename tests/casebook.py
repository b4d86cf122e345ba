"""The casebook: every way an installed file can be unfit to share, each in its own venv.

One tree holds an intact ``twin`` venv and one damaged venv per case (all alpha 1.0),
so every damaged file has identical-looking copies it must not be linked to. The tree is
built and scanned once (pip installs dominate the suite's time); per-venv reports keep
the cases apart: each case's skip reason is counted in its own venv's report.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import helpers
from helpers import Venv, edit_in_place
from wheelbuilder import record_hash

DIST_INFO = "alpha-1.0.dist-info"
OTHER_UID = OTHER_GID = 12345  # an owner no file here has
IS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Context:
    """Where a damage may put things: the case's own folder outside every venv."""

    outside: Path


Damage = Callable[[Venv, Context], None]


@dataclass(frozen=True)
class Case:
    name: str
    damage: Damage
    reason: str | None  # the skip reason counted in the damaged venv; None: none expected
    files: tuple[str, ...]  # site-packages paths that must keep an inode of their own
    count: int = 1  # how many times ``reason`` is counted in the damaged venv
    also: tuple[str, ...] = ()  # other skip reasons, each counted once
    copies: int = 1  # venvs damaged alike (some faults only show when two agree)
    needs_root: bool = False

    def venv_names(self) -> list[str]:
        return [f"{self.name}-{n}" for n in range(1, self.copies + 1)]


# --- RECORD edits ------------------------------------------------------------------------


def replace_record_entry(venv: Venv, relpath: str, new_line: str) -> None:
    helpers.replace_record_entry(venv, DIST_INFO, relpath, new_line)


def append_record_lines(venv: Venv, *new_lines: str) -> None:
    helpers.append_record_lines(venv, DIST_INFO, *new_lines)


def rehash(relpath: str, algorithm: str) -> Damage:
    """RECORD gives a correct digest of the file, but in ``algorithm``."""

    def damage(venv: Venv, _: Context) -> None:
        data = venv.file(relpath).read_bytes()
        replace_record_entry(venv, relpath, f"{relpath},{record_hash(data, algorithm)},{len(data)}")

    return damage


def record_field(relpath: str, hash_field: str) -> Damage:
    """RECORD gives ``hash_field`` as the file's hash (and the right size)."""

    def damage(venv: Venv, _: Context) -> None:
        size = venv.file(relpath).stat().st_size
        replace_record_entry(venv, relpath, f"{relpath},{hash_field},{size}")

    return damage


def record_correct_hash_wrong_size(relpath: str) -> Damage:
    def damage(venv: Venv, _: Context) -> None:
        data = venv.file(relpath).read_bytes()
        replace_record_entry(venv, relpath, f"{relpath},{record_hash(data)},{len(data) + 1}")

    return damage


MALFORMED_LINES = (
    "this line has no commas",
    "alpha/ghost.py,sha256=not*base64*at*all,12",
    "alpha/ghost2.py,sha256=AAAA,12,extra",
    '"alpha/unterminated.py,sha256=AAAA,12',
    "alpha/ghost3.py,,-5",
)


def malformed_lines(venv: Venv, _: Context) -> None:
    append_record_lines(venv, *MALFORMED_LINES)


def listed_twice(relpath: str, second: str | None = None, first: str | None = None) -> Damage:
    """relpath's RECORD line listed again (as second, when given), and first (when
    given) put before every line, so that it is the line a scan meets first."""

    def damage(venv: Venv, _: Context) -> None:
        record = venv.record(DIST_INFO)
        lines = record.read_text(encoding="utf-8").splitlines()
        (line,) = (line for line in lines if line.startswith(f"{relpath},"))
        lines = ([first] if first else []) + lines + [second or line]
        record.write_text("\n".join(lines) + "\n", encoding="utf-8")

    return damage


# --- edits of installed files ------------------------------------------------------------


def append_bytes(relpath: str) -> Damage:
    def damage(venv: Venv, _: Context) -> None:
        with venv.file(relpath).open("a") as out:  # the size now differs from RECORD
            out.write("\n# a local patch\n")

    return damage


def edit_same_size(relpath: str) -> Damage:
    """Change one character in place: same size, same inode, only the hash can tell."""

    def damage(venv: Venv, _: Context) -> None:
        edit_in_place(venv.file(relpath))

    return damage


def chown(relpath: str, uid: int, gid: int) -> Damage:
    def damage(venv: Venv, _: Context) -> None:
        os.chown(venv.file(relpath), uid, gid)

    return damage


def chmod(relpath: str, mode: int) -> Damage:
    def damage(venv: Venv, _: Context) -> None:
        os.chmod(venv.file(relpath), mode)

    return damage


# --- paths the scan must not follow -------------------------------------------------------


def outside_copy(venv: Venv, relpath: str, ctx: Context) -> Path:
    """A copy of an installed file outside every venv: same bytes, same RECORD hash."""
    copy = ctx.outside / Path(relpath).name
    shutil.copyfile(venv.file(relpath), copy)
    return copy


def record_outside(absolute: bool) -> Damage:
    """RECORD names a file outside the venv whose bytes match the hash it gives."""

    def damage(venv: Venv, ctx: Context) -> None:
        copy = outside_copy(venv, "alpha/core.py", ctx)
        data = copy.read_bytes()
        # Relative paths start at site-packages; climb out of the venv and the root.
        recorded = str(copy) if absolute else os.path.relpath(copy, venv.site_packages)
        assert absolute or recorded.startswith("../../../../../")
        append_record_lines(venv, f"{recorded},{record_hash(data)},{len(data)}")

    return damage


def record_bytecode(*paths: str) -> Damage:
    """RECORD lines about .pyc files that are not plain bytecode of the venv: each must be
    counted as the skip its path calls for, not dropped as bytecode (pip lists every .pyc,
    and the scan drops the plain ones before it resolves their paths)."""

    def damage(venv: Venv, _: Context) -> None:
        append_record_lines(venv, *(f"{path},," for path in paths))

    return damage


def symlink_file(relpath: str) -> Damage:
    def damage(venv: Venv, ctx: Context) -> None:
        target = outside_copy(venv, relpath, ctx)
        venv.file(relpath).unlink()
        venv.file(relpath).symlink_to(target)

    return damage


def symlink_folder(folder: str) -> Damage:
    def damage(venv: Venv, ctx: Context) -> None:
        shutil.copytree(venv.file(folder), ctx.outside / Path(folder).name)
        shutil.rmtree(venv.file(folder))
        venv.file(folder).symlink_to(ctx.outside / Path(folder).name, target_is_directory=True)

    return damage


def remove(relpath: str) -> Damage:
    def damage(venv: Venv, _: Context) -> None:
        venv.file(relpath).unlink()

    return damage


def replace_by_folder(relpath: str) -> Damage:
    def damage(venv: Venv, _: Context) -> None:
        venv.file(relpath).unlink()
        venv.file(relpath).mkdir()
        (venv.file(relpath) / "inside.txt").write_text("a folder where a file was recorded\n")

    return damage


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# The hash both "lie" venvs record for core.py: of bytes that were never installed.
LIE = "sha256=" + _b64(hashlib.sha256(b"bytes that were never installed").digest())

CASES: tuple[Case, ...] = (
    # Only proven-identical content is linked (invariant 2).
    Case("append", append_bytes("alpha/util.py"), "changed-since-install", ("alpha/util.py",)),
    Case(
        "same-size-edit",
        edit_same_size("alpha/core.py"),
        "changed-since-install",
        ("alpha/core.py",),
    ),
    Case(
        "record-size-differs",
        record_correct_hash_wrong_size("alpha/core.py"),
        "changed-since-install",
        ("alpha/core.py",),
    ),
    # Both venvs record the same wrong hash: grouped as candidates, byte-identical to each
    # other and to every intact copy, yet not matching their RECORD.
    Case(
        "record-lies",
        record_field("alpha/core.py", LIE),
        "changed-since-install",
        ("alpha/core.py",),
        copies=2,
    ),
    Case("md5", rehash("alpha/core.py", "md5"), "weak-hash", ("alpha/core.py",)),
    Case("sha1", rehash("alpha/core.py", "sha1"), "weak-hash", ("alpha/core.py",)),
    Case("sha224", rehash("alpha/core.py", "sha224"), "weak-hash", ("alpha/core.py",)),
    Case(
        "unknown-algorithm",
        record_field("alpha/core.py", "blake9=" + "A" * 43),
        "unknown-hash",
        ("alpha/core.py",),
    ),
    Case("empty-hash", record_field("alpha/core.py", ""), "no-hash", ("alpha/core.py",)),
    Case("malformed-lines", malformed_lines, "malformed-record", (), count=len(MALFORMED_LINES)),
    # A path listed twice counts once, as its first line says.
    Case("listed-twice", listed_twice("alpha/core.py"), "duplicate-entry", ()),
    Case(
        "listed-twice-without-hash",
        listed_twice("alpha/core.py", second="alpha/core.py,,"),
        "duplicate-entry",
        (),
    ),
    Case(
        "listed-first-without-hash",
        listed_twice("alpha/core.py", second="alpha/./core.py,,", first="alpha/core.py,,"),
        "duplicate-entry",
        ("alpha/core.py",),
        count=2,
        also=("no-hash",),
    ),
    # Never cross a boundary (invariant 4).
    Case(
        "other-uid",
        chown("alpha/core.py", OTHER_UID, -1),
        None,
        ("alpha/core.py",),
        needs_root=True,
    ),
    Case(
        "other-gid",
        chown("alpha/util.py", -1, OTHER_GID),
        None,
        ("alpha/util.py",),
        needs_root=True,
    ),
    Case("mode-0600", chmod("alpha/cli.py", 0o600), None, ("alpha/cli.py",)),
    Case("mode-0664", chmod("alpha/data/table.csv", 0o664), None, ("alpha/data/table.csv",)),
    Case("outside-relative", record_outside(absolute=False), "outside-venv", ()),
    Case("outside-absolute", record_outside(absolute=True), "outside-venv", ()),
    Case(
        "outside-pyc",
        record_bytecode(
            "../../../../../elsewhere/__pycache__/gone.cpython-311.pyc",
            "/elsewhere/__pycache__/gone.cpython-311.pyc",
        ),
        "outside-venv",
        (),
        count=2,
    ),
    Case(
        "per-install-pyc",
        record_bytecode(
            "~lpha/__pycache__/core.cpython-311.pyc",  # a leftover of an interrupted pip
            "../../../bin/__pycache__/tool.cpython-311.pyc",  # in the scripts folder
        ),
        "per-install",
        (),
        count=2,
    ),
    Case("symlink-file", symlink_file("alpha/util.py"), "symlink", ()),
    Case("symlink-folder", symlink_folder("alpha/data"), "symlink", ()),
    # Recorded paths that are no longer regular files.
    Case("missing", remove("alpha/util.py"), "missing", ()),
    Case("folder", replace_by_folder("alpha/util.py"), "not-regular-file", ()),
)
