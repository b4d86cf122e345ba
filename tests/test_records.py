"""Tests for dedupe.records: parse_record turns RECORD lines into entries or one error."""

from __future__ import annotations

import base64
import csv
import hashlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupe.records import RecordEntry, RecordError, iter_record, parse_record

CONTENT = b"print('hello')\n"
SHA256 = hashlib.sha256(CONTENT).digest()


def b64(digest: bytes) -> str:
    """RECORD's digest encoding: urlsafe base64 without padding."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


SHA256_FIELD = f"sha256={b64(SHA256)}"


def only_entry(lines: list[str]) -> RecordEntry:
    (entry,) = parse_record(lines)
    return entry


@pytest.mark.parametrize(
    ("line", "path", "algorithm", "digest", "size"),
    [
        pytest.param(
            f"pkg/mod.py,{SHA256_FIELD},{len(CONTENT)}",
            "pkg/mod.py",
            "sha256",
            SHA256,
            len(CONTENT),
            id="normal-line",
        ),
        pytest.param(
            f'"pkg/a,b.py",{SHA256_FIELD},15',
            "pkg/a,b.py",
            "sha256",
            SHA256,
            15,
            id="quoted-path-with-comma",
        ),
        pytest.param(
            "pkg-1.0.dist-info/RECORD,,",
            "pkg-1.0.dist-info/RECORD",
            None,
            None,
            None,
            id="empty-hash-and-size",
        ),
        pytest.param(
            "pkg/__pycache__/mod.cpython-311.pyc,,",
            "pkg/__pycache__/mod.cpython-311.pyc",
            None,
            None,
            None,
            id="pip-pyc-line",
        ),
        pytest.param(
            f"../../../bin/tool,{SHA256_FIELD},15",
            "../../../bin/tool",
            "sha256",
            SHA256,
            15,
            id="relative-path-climbing-to-bin",
        ),
        # The parser keeps absolute paths; refusing them is the scan's job (outside-venv).
        pytest.param(
            f"/usr/lib/thing.py,{SHA256_FIELD},15",
            "/usr/lib/thing.py",
            "sha256",
            SHA256,
            15,
            id="absolute-path",
        ),
        pytest.param(
            f"pkg/mod.py,{SHA256_FIELD},15\r\n",
            "pkg/mod.py",
            "sha256",
            SHA256,
            15,
            id="crlf-line-end",
        ),
        pytest.param(
            f"pkg/mod.py,{SHA256_FIELD},15\n",
            "pkg/mod.py",
            "sha256",
            SHA256,
            15,
            id="lf-line-end",
        ),
        pytest.param(
            "pkg/empty.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0",
            "pkg/empty.py",
            "sha256",
            hashlib.sha256(b"").digest(),
            0,
            id="zero-size",
        ),
        # pdm's install.cache records a file it links from its cache with no digest.
        pytest.param("pkg/mod.py,sha256=,15", "pkg/mod.py", None, None, 15, id="empty-digest"),
        # Weak and unknown algorithms parse: the scan skips them with their own reasons.
        pytest.param(
            f"pkg/mod.py,md5={b64(hashlib.md5(CONTENT).digest())},15",
            "pkg/mod.py",
            "md5",
            hashlib.md5(CONTENT).digest(),
            15,
            id="md5-parses-for-the-scan-to-skip",
        ),
        pytest.param(
            f"pkg/mod.py,sha512={b64(hashlib.sha512(CONTENT).digest())},15",
            "pkg/mod.py",
            "sha512",
            hashlib.sha512(CONTENT).digest(),
            15,
            id="sha512",
        ),
        pytest.param(
            f"pkg/mod.py,blake9={b64(b'x' * 20)},15",
            "pkg/mod.py",
            "blake9",
            b"x" * 20,
            15,
            id="unknown-algorithm-parses-for-the-scan-to-skip",
        ),
    ],
)
def test_parse_valid_line(
    line: str, path: str, algorithm: str | None, digest: bytes | None, size: int | None
) -> None:
    entry = only_entry([line])
    assert entry.path == path
    assert entry.size == size
    if algorithm is None:
        assert entry.hash is None
    else:
        assert entry.hash is not None
        assert entry.hash.algorithm == algorithm
        assert entry.hash.digest == digest


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("pkg/bad.py,sha256=!!!not*base64,15", id="bad-base64"),
        pytest.param("pkg/bad.py,sha256,15", id="hash-without-equals"),
        pytest.param(f"pkg/bad.py,{SHA256_FIELD},-15", id="negative-size"),
        pytest.param(f"pkg/bad.py,{SHA256_FIELD},fifteen", id="non-integer-size"),
        pytest.param(f"pkg/bad.py,{SHA256_FIELD},1.5", id="fractional-size"),
        pytest.param(f"pkg/bad.py,{SHA256_FIELD}", id="two-fields"),
        pytest.param(f"pkg/bad.py,{SHA256_FIELD},15,extra", id="four-fields"),
        pytest.param("pkg/bad.py", id="one-field"),
        pytest.param(f"pkg/bad.py,sha256={b64(SHA256[:16])},15", id="sha256-digest-too-short"),
        pytest.param(
            f"pkg/bad.py,sha256={b64(hashlib.sha512(CONTENT).digest())},15",
            id="sha256-digest-too-long",
        ),
        pytest.param(f"pkg/bad.py,md5={b64(SHA256)},15", id="md5-digest-wrong-length"),
    ],
)
def test_malformed_line_raises_record_error(line: str) -> None:
    good = f"pkg/good.py,{SHA256_FIELD},15"
    with pytest.raises(RecordError) as caught:
        parse_record([good, line])
    # The good entry survives so the scan can still use it.
    assert [entry.path for entry in caught.value.entries] == ["pkg/good.py"]
    assert len(caught.value.problems) == 1
    assert "pkg/bad.py" in caught.value.problems[0]


def test_iter_record_gives_entries_and_problems_in_line_order() -> None:
    lines = [f"pkg/one.py,{SHA256_FIELD},15", "", "pkg/bad.py,sha256=%%%,15", "pkg/two.py,,"]
    parsed = list(iter_record(lines))
    assert [p if isinstance(p, str) else p.path for p in parsed] == [
        "pkg/one.py",
        "line 3 'pkg/bad.py,sha256=%%%,15': digest '%%%' is not urlsafe base64",
        "pkg/two.py",
    ]


def test_record_error_lists_every_bad_line() -> None:
    lines = [
        f"pkg/one.py,{SHA256_FIELD},15",
        "pkg/bad1.py,sha256=%%%,15",
        f"pkg/two.py,{SHA256_FIELD},15",
        f"pkg/bad2.py,{SHA256_FIELD},-1",
        "pkg/bad3.py,too,many,fields",
        "pkg-1.0.dist-info/RECORD,,",
    ]
    with pytest.raises(RecordError) as caught:
        parse_record(lines)
    error = caught.value
    assert [entry.path for entry in error.entries] == [
        "pkg/one.py",
        "pkg/two.py",
        "pkg-1.0.dist-info/RECORD",
    ]
    assert len(error.problems) == 3
    bad_paths = ("pkg/bad1.py", "pkg/bad2.py", "pkg/bad3.py")
    for bad, problem in zip(bad_paths, error.problems, strict=True):
        assert bad in problem
        # One error names every problem: the CLI shows just its message.
        assert bad in str(error)


def test_record_file_text_as_read_from_disk() -> None:
    """A whole RECORD as pip writes it, read as lines with their line ends kept."""
    text = (
        f"../../../bin/tool,{SHA256_FIELD},15\r\n"
        "pkg-1.0.dist-info/INSTALLER,sha256=zuuue4knoyJ-UwPPXg8fezS7VCrXJQrAP7zeNuwvFQg,4\r\n"
        "pkg-1.0.dist-info/RECORD,,\r\n"
        "pkg/__pycache__/mod.cpython-311.pyc,,\r\n"
        f"pkg/mod.py,{SHA256_FIELD},15\r\n"
    )
    entries = parse_record(io.StringIO(text, newline=""))
    assert [entry.path for entry in entries] == [
        "../../../bin/tool",
        "pkg-1.0.dist-info/INSTALLER",
        "pkg-1.0.dist-info/RECORD",
        "pkg/__pycache__/mod.cpython-311.pyc",
        "pkg/mod.py",
    ]
    assert entries[-1].size == 15


# Paths of letters, digits and the characters csv must quote (comma, quote) or that
# installers meet in real trees (space, dots, dashes); no line breaks, which a RECORD read
# line by line cannot carry inside a field.
_path_text = st.text(
    alphabet=st.sampled_from("abcXYZ019_-. ,\"'/é"), min_size=1, max_size=40
).filter(lambda text: text.strip() != "")


@settings(max_examples=150, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(_path_text, st.binary(min_size=0, max_size=64), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_parse_record_round_trips_csv_writer_output(
    rows: list[tuple[str, bytes, bool]],
) -> None:
    """Whatever csv.writer writes as a RECORD (as wheel builders do), parse_record reads back."""
    out = io.StringIO()
    writer = csv.writer(out)
    expected: list[tuple[str, bytes | None, int | None]] = []
    for path, content, has_hash in rows:
        if has_hash:
            digest = hashlib.sha256(content).digest()
            writer.writerow([path, f"sha256={b64(digest)}", len(content)])
            expected.append((path, digest, len(content)))
        else:
            writer.writerow([path, "", ""])
            expected.append((path, None, None))
    entries = parse_record(out.getvalue().splitlines(keepends=True))
    assert [
        (entry.path, entry.hash.digest if entry.hash else None, entry.size) for entry in entries
    ] == expected
