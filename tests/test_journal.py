"""The journal's entries (dedupe.journal): their format read back, and every bad entry
refused with all its problems named. Pure, but for the folder tests at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedupe.errors import StoreError
from dedupe.journal import (
    JOURNAL_FORMAT,
    Entry,
    Journal,
    JournalError,
    PendingSource,
    format_entry,
    inside,
    parse_entry,
    writer_pid,
)

SITE = "lib/python3.11/site-packages"

UTIL = PendingSource(
    source=f"{SITE}/alpha/util.py",
    algorithm="sha256",
    digest=bytes(range(32)),
    mtime_ns=1_700_000_000_123_456_789,
    size=12_345,
    pycs=(
        f"{SITE}/alpha/__pycache__/util.cpython-311.pyc",
        f"{SITE}/alpha/__pycache__/util.cpython-311.opt-1.pyc",
    ),
)
ENTRY = Entry(
    root="/srv/venvs/a",
    device=2049,
    ino=131,
    folders=(f"{SITE}/alpha", f"{SITE}/alpha/__pycache__"),
    sources=(UTIL,),
)


def raw(entry: Entry = ENTRY) -> dict[str, object]:
    parsed = json.loads(format_entry(entry))
    assert isinstance(parsed, dict)
    return parsed


def test_an_entry_reads_back_as_written() -> None:
    assert parse_entry(format_entry(ENTRY)) == ENTRY
    assert raw()["format"] == JOURNAL_FORMAT


def test_a_name_that_is_not_utf8_survives_as_an_escape() -> None:
    odd = os.fsdecode(b"caf\xe9.py")  # surrogateescape: the bytes on disk come back
    source = PendingSource(
        source=f"{SITE}/{odd}",
        algorithm="sha256",
        digest=b"\x01" * 32,
        mtime_ns=1,
        size=2,
        pycs=(f"{SITE}/__pycache__/{odd[:-3]}.cpython-311.pyc",),
    )
    entry = Entry(root="/v", device=1, ino=2, folders=(SITE,), sources=(source,))
    data = format_entry(entry)
    assert data.isascii()
    assert parse_entry(data) == entry


names = st.text(alphabet="abcxyz_0123456789", min_size=1, max_size=8)


@given(
    folders=st.lists(st.lists(names, min_size=1, max_size=4).map("/".join), max_size=5),
    stems=st.lists(names, max_size=4),
    mtime=st.integers(min_value=0, max_value=2**63),
    size=st.integers(min_value=0, max_value=2**40),
)
def test_any_entry_of_inside_paths_reads_back(
    folders: list[str], stems: list[str], mtime: int, size: int
) -> None:
    sources = tuple(
        PendingSource(
            source=f"pkg/{stem}.py",
            algorithm="sha256",
            digest=stem.encode() + b"\x00",
            mtime_ns=mtime,
            size=size,
            pycs=(f"pkg/__pycache__/{stem}.cpython-312.pyc",),
        )
        for stem in stems
    )
    entry = Entry(root="/r", device=0, ino=0, folders=tuple(folders), sources=sources)
    assert parse_entry(format_entry(entry)) == entry


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        pytest.param("", True, id="root"),
        pytest.param("lib/x", True, id="folder"),
        pytest.param("../x", False, id="climbs-out"),
        pytest.param("lib/../../x", False, id="climbs-out-later"),
        pytest.param("/etc", False, id="absolute"),
        pytest.param("lib//x", False, id="empty-part"),
        pytest.param("lib/./x", False, id="dot"),
        pytest.param("lib/x\0", False, id="nul"),
    ],
)
def test_inside(rel: str, ok: bool) -> None:
    assert inside(rel) is ok


def changed(**fields: object) -> bytes:
    data = raw()
    data.update(fields)
    return json.dumps(data).encode()


def source_row(**fields: object) -> list[object]:
    row: dict[str, object] = {
        "source": UTIL.source,
        "algorithm": UTIL.algorithm,
        "digest": UTIL.digest.hex(),
        "mtime_ns": UTIL.mtime_ns,
        "size": UTIL.size,
        "pycs": list(UTIL.pycs),
    }
    row.update(fields)
    return list(row.values())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"{", "not JSON", id="torn"),
        pytest.param(b"[]", "not a JSON object", id="list"),
        pytest.param(changed(format=2), "format 2", id="format"),
        pytest.param(changed(root="venvs/a"), "not an absolute path", id="relative-root"),
        pytest.param(changed(device=-1), "must be integers", id="device"),
        pytest.param(changed(ino="131"), "must be integers", id="ino"),
        pytest.param(changed(folders=["../../etc"]), "inside the venv", id="folder-out"),
        pytest.param(changed(folders="lib"), "inside the venv", id="folders-string"),
        pytest.param(changed(sources={}), "is not a list", id="sources"),
        pytest.param(changed(sources=[[1, 2]]), "not a list of 6", id="short-row"),
        pytest.param(
            changed(sources=[source_row(source="../x.py")]), "not inside", id="source-out"
        ),
        pytest.param(changed(sources=[source_row(digest="zz")]), "not hex", id="digest"),
        pytest.param(
            changed(sources=[source_row(algorithm="sha-256/x")]), "not a name", id="algorithm"
        ),
        pytest.param(changed(sources=[source_row(size=True)]), "integers", id="bool-size"),
        pytest.param(
            changed(sources=[source_row(pycs=[f"{SITE}/alpha/util.py"])]),
            "not all beside",
            id="pyc-not-a-pyc",
        ),
        pytest.param(
            changed(sources=[source_row(pycs=[f"{SITE}/__pycache__/util.cpython-311.pyc"])]),
            "not all beside",
            id="pyc-of-another-folder",
        ),
        pytest.param(
            changed(sources=[source_row(pycs=[f"{SITE}/alpha/__pycache__/core.cpython-311.pyc"])]),
            "not all beside",
            id="pyc-of-another-module",
        ),
    ],
)
def test_a_bad_entry_is_refused(data: bytes, expected: str) -> None:
    with pytest.raises(JournalError, match=expected):
        parse_entry(data)


def test_every_problem_of_an_entry_is_named_at_once() -> None:
    data = changed(root="x", folders=["/abs"], sources=[source_row(digest="", size=-1)])
    with pytest.raises(JournalError) as caught:
        parse_entry(data)
    message = str(caught.value)
    for part in ("'x' is not an absolute path", "'/abs'", "not hex", "must be integers"):
        assert part in message, message


@pytest.mark.parametrize(
    ("name", "pid"),
    [("123-0.json", 123), ("123-17.json", 123), ("x-1.json", None), ("123.json", None)],
)
def test_writer_pid(name: str, pid: int | None) -> None:
    assert writer_pid(name) == pid


# --- the folder ---------------------------------------------------------------------------


def test_an_entry_is_there_while_its_work_runs_and_gone_after(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    assert journal.names() == []
    with journal.pending(ENTRY):
        (name,) = journal.names()
        assert writer_pid(name) == os.getpid()
        assert parse_entry(journal.read(name)) == ENTRY
        assert (tmp_path / "journal").stat().st_mode & 0o777 == 0o700
        assert [p.name for p in (tmp_path / "journal").iterdir()] == [name]  # no temp left
    assert journal.names() == []


def test_an_entry_stays_when_its_work_raises(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    with pytest.raises(RuntimeError), journal.pending(ENTRY):
        raise RuntimeError("half done, as after a kill")
    assert len(journal.names()) == 1


def test_an_entry_of_a_killed_run_with_our_pid_is_never_overwritten(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    (tmp_path / "journal").mkdir()
    old = tmp_path / "journal" / f"{os.getpid()}-0.json"
    kept = format_entry(Entry(root="/elsewhere", device=1, ino=1, folders=()))
    old.write_bytes(kept)
    for _ in range(3):
        journal.write(ENTRY)
    assert old.read_bytes() == kept
    assert len(journal.names()) == 4


def test_a_journal_that_cannot_be_written_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "journal").write_text("a file where the folder goes")
    with pytest.raises(StoreError, match="cannot write to the store's journal"):
        Journal(str(tmp_path)).write(ENTRY)
