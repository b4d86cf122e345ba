"""Facts about .pyc files: names beside a source, headers, and validity for a source.

A pyc's header (PEP 552) is magic (4 bytes), flags (4), then either the source's mtime
and size (timestamp pyc, flags 0) or a hash of the source (flags bit 0; bit 1 asks the
importer to check it). Nothing here reads or writes files.
"""

from __future__ import annotations

import _imp
import importlib.util
import re
import struct
from dataclasses import dataclass

HEADER_SIZE = 16
_FLAG_HASH_BASED = 0b01
_FLAG_CHECK_SOURCE = 0b10
CHECKED_HASH_FLAGS = _FLAG_HASH_BASED | _FLAG_CHECK_SOURCE
# <stem>.<cache tag>[.opt-N].pyc, as importlib.util.cache_from_source writes them.
_SUFFIX = re.compile(r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*(\.opt-[12])?")


@dataclass(frozen=True, slots=True)
class PycHeader:
    magic: bytes
    flags: int
    mtime: int  # timestamp pycs: int(source st_mtime) & 0xFFFFFFFF
    size: int  # timestamp pycs: source st_size & 0xFFFFFFFF
    source_hash: bytes  # hash-based pycs

    @property
    def hash_based(self) -> bool:
        return bool(self.flags & _FLAG_HASH_BASED)

    @property
    def checked(self) -> bool:
        return bool(self.flags & _FLAG_CHECK_SOURCE)


def parse_header(data: bytes) -> PycHeader:
    """Parse the first 16 bytes of a pyc; ValueError when they are not a pyc header."""
    if len(data) < HEADER_SIZE:
        raise ValueError("shorter than a pyc header")
    magic, flags = data[:4], struct.unpack("<I", data[4:8])[0]
    if magic[2:4] != b"\r\n":
        raise ValueError(f"magic {magic!r} is not a Python bytecode magic number")
    if flags & ~(_FLAG_HASH_BASED | _FLAG_CHECK_SOURCE) or flags == _FLAG_CHECK_SOURCE:
        raise ValueError(f"unknown pyc flags {flags:#x}")
    mtime, size = struct.unpack("<II", data[8:16])
    return PycHeader(magic, flags, mtime, size, data[8:16])


def pyc_mtime(mtime_ns: int) -> int:
    """The mtime field the importer expects: int(st.st_mtime) & 0xFFFFFFFF, where
    st_mtime is the float CPython builds as sec + nsec * 1e-9, which rounds up to the next
    second when nsec is within about 240 ns of it."""
    sec, nsec = divmod(mtime_ns, 1_000_000_000)
    return int(sec + nsec * 1e-9) & 0xFFFFFFFF


def valid_for_stat(header: PycHeader, mtime_ns: int, size: int) -> bool:
    """Whether a timestamp pyc is what the importer accepts for a source with this stat."""
    return (
        not header.hash_based
        and header.mtime == pyc_mtime(mtime_ns)
        and header.size == size & 0xFFFFFFFF
    )


def can_check_hash(header: PycHeader) -> bool:
    """A checked hash-based pyc of this interpreter: its hash can be recomputed here."""
    return header.hash_based and header.checked and header.magic == importlib.util.MAGIC_NUMBER


def valid_for_bytes(header: PycHeader, source: bytes) -> bool:
    return can_check_hash(header) and header.source_hash == importlib.util.source_hash(source)


# The keyed hash of a checked hash-based pyc (_imp.source_hash, keyed by the magic number)
# is SipHash-2-4 up to CPython 3.10 and SipHash-1-3 from 3.11: each family by the magic
# numbers of its releases (3.7's first to 3.10's last; 3.11's first to 3.14's last), and
# by what each returns for key 0 and no bytes, which tells this process's own family.
_KEYED_HASH_FAMILIES = {
    "siphash24": (range(3394, 3440), bytes.fromhex("d70077739d4b921e")),
    "siphash13": (range(3495, 3650), bytes.fromhex("2c530c1562a7fbd1")),
}
_OWN_HASH_OF_NOTHING = _imp.source_hash(0, b"")
_OWN_FAMILY = next(
    (name for name, (_, empty) in _KEYED_HASH_FAMILIES.items() if empty == _OWN_HASH_OF_NOTHING),
    None,
)


def can_hash(magic: bytes) -> bool:
    """Whether this process computes the source hash of that interpreter's checked
    hash-based pycs: its magic number is of a known release of this process's family."""
    number = int.from_bytes(magic[:2], "little")
    family = next((n for n, (r, _) in _KEYED_HASH_FAMILIES.items() if number in r), None)
    return family is not None and family == _OWN_FAMILY and magic[2:4] == b"\r\n"


def checked_hash_header(magic: bytes, source: bytes) -> bytes:
    """The header of a checked hash-based pyc of this magic number (can_hash) for these
    source bytes, as that interpreter's importer computes it."""
    flags = struct.pack("<I", CHECKED_HASH_FLAGS)
    return magic + flags + _imp.source_hash(int.from_bytes(magic, "little"), source)


def with_source_stat(pyc: bytes, mtime_ns: int, size: int) -> bytes:
    """The same pyc, its header pointing at a source with this mtime and size."""
    stamp = struct.pack("<II", pyc_mtime(mtime_ns), size & 0xFFFFFFFF)
    return pyc[:8] + stamp + pyc[16:]


def is_pyc_suffix(suffix: str) -> bool:
    """Whether suffix is a cache tag and optimisation level, e.g. 'cpython-311.opt-1'."""
    return _SUFFIX.fullmatch(suffix) is not None
