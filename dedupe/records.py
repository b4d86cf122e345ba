"""Parsing of a distribution's RECORD (the installed-files list of the wheel spec)."""

from __future__ import annotations

import binascii
import csv
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import DedupeError

# Algorithms we accept as proof of content. md5/sha1 are collision-prone and sha224 is
# excluded by the wheel spec's "sha256 or stronger" rule.
STRONG_ALGORITHMS = frozenset(
    {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"}
)
WEAK_ALGORITHMS = frozenset({"md5", "sha1", "sha224"})

_B64_URLSAFE = re.compile(r"[A-Za-z0-9_-]*")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_DIGEST_SIZES = {
    name: hashlib.new(name).digest_size
    for name in hashlib.algorithms_guaranteed
    if not name.startswith("shake")
}


@dataclass(frozen=True, slots=True)
class RecordHash:
    """algorithm=digest, the digest kept as RECORD writes it (urlsafe base64, unpadded):
    a rerun compares inode numbers, not digests, so it is decoded only when used."""

    algorithm: str
    encoded: str

    @property
    def digest(self) -> bytes:
        # base64.urlsafe_b64decode, without its layers of Python calls: pass 1 decodes
        # one digest per candidate. The characters were checked when the line was parsed.
        data = self.encoded.encode("ascii").translate(_FROM_URLSAFE)
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))

    @property
    def is_strong(self) -> bool:
        return self.algorithm in STRONG_ALGORITHMS

    def __str__(self) -> str:
        return f"{self.algorithm}={self.encoded}"


@dataclass(frozen=True, slots=True)
class RecordEntry:
    """One line of RECORD: a path relative to the folder that holds .dist-info."""

    path: str
    hash: RecordHash | None
    size: int | None


class RecordError(DedupeError):
    """A RECORD has malformed lines; carries the entries that did parse and every problem."""

    def __init__(self, problems: list[str], entries: list[RecordEntry]) -> None:
        self.problems = problems
        self.entries = entries
        super().__init__(f"{len(problems)} malformed RECORD line(s): " + "; ".join(problems))


def _parse_hash(text: str) -> RecordHash | None:
    algorithm, sep, encoded = text.partition("=")
    if not sep or not algorithm:
        raise ValueError(f"hash {text!r} is not of the form algorithm=digest")
    if not encoded:
        # 'sha256=' with no digest: how pdm records the files it links from its cache
        # (install.cache). Nothing to prove them by, as with an empty field.
        return None
    if not _B64_URLSAFE.fullmatch(encoded) or len(encoded) % 4 == 1:
        raise ValueError(f"digest {encoded!r} is not urlsafe base64")
    algorithm = algorithm.lower()
    # n bytes are ceil(4n/3) unpadded base64 characters, and every such string of
    # base64 characters decodes to n bytes: the length is the whole check.
    length = (len(encoded) * 3) // 4
    expected = _DIGEST_SIZES.get(algorithm)
    if expected is not None and length != expected:
        raise ValueError(f"{algorithm} digest is {length} bytes, expected {expected}")
    return RecordHash(algorithm, encoded)


def _parse_size(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"size {text!r} is not a non-negative integer")
    return int(text)


def _parse_row(row: list[str]) -> RecordEntry:
    if len(row) != 3:
        raise ValueError(f"expected 3 fields, got {len(row)}")
    path, hash_text, size_text = row
    if not path:
        raise ValueError("empty path")
    if "\0" in path:
        raise ValueError("path contains a NUL byte")
    file_hash = _parse_hash(hash_text) if hash_text else None
    size = _parse_size(size_text) if size_text else None
    return RecordEntry(path, file_hash, size)


def parse_record(lines: Iterable[str]) -> list[RecordEntry]:
    """Parse RECORD lines; raise RecordError naming every bad line (with the good entries)."""
    entries: list[RecordEntry] = []
    problems: list[str] = []
    for parsed in iter_record(lines):
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            entries.append(parsed)
    if problems:
        raise RecordError(problems, entries)
    return entries


def iter_record(lines: Iterable[str]) -> Iterator[RecordEntry | str]:
    """Each RECORD line's entry in turn, or for a bad line the problem, as a str. A walk
    takes the entries as they come: a RECORD of thousands of lines is never held parsed.

    Each line is parsed on its own, so one garbage line (a NUL, a stray quote) costs only
    itself: the csv module would otherwise give up on the whole file.
    """
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            # Without a quote, a CSV line is its comma-separated fields: skip the csv
            # module for the common case (it is most of a rerun's parsing time).
            row = line.split(",") if '"' not in line else next(csv.reader([line]))
            parsed: RecordEntry | str = _parse_row(row)
        except (csv.Error, ValueError, StopIteration) as exc:
            parsed = f"line {number} {line!r}: {exc}"
        yield parsed
