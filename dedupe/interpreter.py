"""Which interpreter build a venv runs: the identity its pycs are grouped by.

Patch releases of one minor version share a magic number but may compile differently
(one report saw 3.11.2 and 3.11.7 give `click/utils.py` different column tables; on the
machine this was written on their bytecode of it was the same), so one pyc may serve
only venvs whose interpreter is the same build. A build is named here by the bytes of
the executable the venv's `bin/python` leads to and of the libpython it loads (what a
`--enable-shared` build keeps its compiler in). The interpreter is read, never run: a
scan as root must not execute a user's files.

Linux first: the libpython is found from the executable's ELF dynamic section. On other
systems, or for an executable this cannot read, the build is unknown and the venv's
pycs are kept valid without being shared.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass

import xxhash

from .quiet import open_quietly

__all__ = ["Build", "Builds", "dynamic_needs", "python_version"]

_MAX_BYTES = 256 << 20  # an interpreter or libpython is tens of MB: a bigger file is not one
_CHUNK = 1 << 18  # read at a time: see dedupe.hashing.CHUNK
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_VENV_PYTHONS = ("bin/python", "bin/python3", "Scripts/python.exe")
# Where the dynamic loader looks after RUNPATH (ld.so.conf is not read: a libpython
# found nowhere here leaves the build unknown, which only costs sharing).
_SYSTEM_LIBS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")
_VERSION = re.compile(r"(\d+)\.(\d+)")
_SITE_VERSION = re.compile(r"/lib/python(\d+)\.(\d+)[a-z]*/site-packages$")


@dataclass(frozen=True, slots=True)
class Build:
    """An interpreter build: its minor version and what names its compiler's bytes."""

    version: tuple[int, int]
    ident: str  # 16 hex digits: no '.' or '+', so it fits in a store name

    def writes(self, cache_tag: str) -> bool:
        """Whether a pyc of this cache tag ('cpython-311') is one this build writes."""
        major, minor = self.version
        return re.fullmatch(rf"[a-z]+-?{major}{minor}", cache_tag) is not None


def python_version(
    config: dict[str, str], site_packages: tuple[str, ...]
) -> tuple[int, int] | None:
    """The venv's minor version: pyvenv.cfg's `version` (venv) or `version_info`
    (virtualenv, uv), else its lib/pythonX.Y folder."""
    for key in ("version", "version_info"):
        found = _VERSION.match(config.get(key, ""))
        if found:
            return int(found[1]), int(found[2])
    for path in site_packages:
        found = _SITE_VERSION.search(path)
        if found:
            return int(found[1]), int(found[2])
    return None


class Builds:
    """The builds of venv interpreters, each executable read once per run: thousands of
    venvs usually run a handful of interpreters."""

    def __init__(self) -> None:
        self._idents: dict[tuple[int, int, int, int, int], str | None] = {}

    def of(self, root: str, version: tuple[int, int] | None) -> Build | None:
        """The build the venv at root runs, or None when it cannot be told."""
        if version is None:
            return None
        for name in _VENV_PYTHONS:
            executable = os.path.realpath(os.path.join(root, name))
            try:
                st = os.stat(executable)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if key not in self._idents:
                self._idents[key] = _ident(executable)
            ident = self._idents[key]
            return None if ident is None else Build(version, ident)
        return None


def _ident(executable: str) -> str | None:
    chunks: list[bytes] = []  # the executable is parsed whole: a few MB at most
    if not _read(executable, chunks.append):
        return None
    data = b"".join(chunks)
    digest = xxhash.xxh3_128(data)
    needs = dynamic_needs(data)
    if needs is None:
        return None
    libraries, runpath = needs
    origin = os.path.dirname(executable)
    for library in libraries:
        if not library.startswith("libpython"):
            continue  # libc and the like do not compile Python
        folders = [p.replace("${ORIGIN}", origin).replace("$ORIGIN", origin) for p in runpath]
        found = _find(library, [*folders, *_SYSTEM_LIBS], digest)
        if found is None:
            return None
        digest = found
    return digest.hexdigest()[:16]


def _find(library: str, folders: list[str], digest: xxhash.xxh3_128) -> xxhash.xxh3_128 | None:
    """digest fed with the bytes of the first readable library of that name in folders.
    Streamed: a libpython is tens of MB, which a whole read would add to the peak."""
    for folder in folders:
        fed = digest.copy()  # a read that fails halfway must leave digest as it was
        if _read(os.path.join(folder, library), fed.update):
            return fed
    return None


def _read(path: str, into: Callable[[bytes], object]) -> bool:
    """Give a regular file's bytes to into, a chunk at a time; False when it is not
    one or cannot be read."""
    try:
        fd = open_quietly(os.path.realpath(path), _READ)  # a venv's own, with --copies
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_BYTES:
            return False
        with os.fdopen(os.dup(fd), "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                into(chunk)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


_DT_NEEDED, _DT_RPATH, _DT_RUNPATH = 1, 15, 29
_SHT_DYNAMIC = 6


def dynamic_needs(data: bytes) -> tuple[list[str], list[str]] | None:
    """The libraries an ELF file needs (DT_NEEDED) and its search path (DT_RUNPATH or
    DT_RPATH, ':'-separated entries): ([], []) for a static executable, None when data is
    not an ELF file this can read."""
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    try:
        sections = _sections(data, wide, order)
        dynamic = [s for s in sections if s[0] == _SHT_DYNAMIC]
        if not dynamic:
            return [], []
        _type, offset, size, link = dynamic[0]
        _t, str_offset, str_size, _l = sections[link]
        strings = data[str_offset : str_offset + str_size]
        entry = struct.Struct(order + ("qQ" if wide else "iI"))
        needed: list[str] = []
        runpath: list[str] = []
        for tag, value in entry.iter_unpack(data[offset : offset + size - size % entry.size]):
            if tag == 0:
                break
            if tag in (_DT_NEEDED, _DT_RPATH, _DT_RUNPATH):
                text = strings[value : strings.index(b"\0", value)].decode("utf-8", "replace")
                if tag == _DT_NEEDED:
                    needed.append(text)
                else:
                    runpath += text.split(":")
        return needed, runpath
    except (struct.error, IndexError, ValueError, OverflowError):
        return None


def _sections(data: bytes, wide: bool, order: str) -> list[tuple[int, int, int, int]]:
    """(type, offset, size, link) of each section header."""
    if wide:
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        entsize, count = struct.unpack_from(order + "HH", data, 0x3A)
        header = struct.Struct(order + "IIQQQQI")
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        entsize, count = struct.unpack_from(order + "HH", data, 0x2E)
        header = struct.Struct(order + "IIIIIII")
    found = []
    for i in range(count):
        _name, kind, _flags, _addr, offset, size, link = header.unpack_from(
            data, shoff + i * entsize
        )
        found.append((kind, offset, size, link))
    return found
