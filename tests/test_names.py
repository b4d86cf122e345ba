"""The store's object names: each key's name parses back to the key, and nothing else parses
(pure functions: no disk)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedupe.store.names import ObjectKey, PycKey, parse_object_name, parse_pyc_name

_owners = st.integers(min_value=0, max_value=2**32 - 1)
_modes = st.integers(min_value=0, max_value=0o7777)
_generations = st.integers(min_value=0, max_value=10**6)

_object_keys = st.builds(
    ObjectKey,
    algorithm=st.sampled_from(["sha256", "sha384", "sha512"]),
    digest=st.binary(min_size=2, max_size=64),
    uid=_owners,
    gid=_owners,
    mode=_modes,
)
_pyc_keys = st.builds(
    PycKey,
    source=_object_keys,
    source_generation=_generations,
    suffix=st.sampled_from(["cpython-311", "cpython-311.opt-1", "cpython-313.opt-2"]),
    magic=st.binary(min_size=4, max_size=4),
    flags=st.integers(min_value=0, max_value=3),
    build=st.text("0123456789abcdef", min_size=16, max_size=16),
    uid=_owners,
    gid=_owners,
    mode=_modes,
)


def _split(relpath: str) -> tuple[str, str, str]:
    _top, algorithm, shard, name = relpath.split("/")
    return algorithm, shard, name


@given(_object_keys, _generations)
def test_an_object_name_parses_to_its_key(key: ObjectKey, generation: int) -> None:
    assert parse_object_name(*_split(key.relpath(generation))) == (key, generation)


@given(_pyc_keys, _generations)
def test_a_pyc_name_parses_to_its_key(key: PycKey, generation: int) -> None:
    assert parse_pyc_name(*_split(key.relpath(generation))) == (key, generation)


def test_names_that_share_all_but_the_digest_parse_to_their_own_keys() -> None:
    """A store's names repeat their owner, mode and interpreter parts: each name still
    gives its own key, and the same key when it is met again."""
    one = ObjectKey("sha256", bytes(32), 1000, 1000, 0o644)
    two = ObjectKey("sha256", bytes(range(32)), 1000, 1000, 0o644)
    for key in (one, two, one):
        assert parse_object_name(*_split(key.relpath(3))) == (key, 3)
    pyc = PycKey(
        source=two,
        source_generation=1,
        suffix="cpython-311.opt-1",
        magic=bytes.fromhex("a70d0d0a"),
        flags=0,
        build="05b5d2f219caaa69",
        uid=1000,
        gid=1000,
        mode=0o644,
    )
    for pyc_key in (pyc, dataclasses.replace(pyc, source=one), pyc):
        assert parse_pyc_name(*_split(pyc_key.relpath(0))) == (pyc_key, 0)


_OBJECT = "ad1c442ecad128854655824fa8df73bbac94c5025baadb65493b0e49a882.0.0.644.0"
_PYC_TAIL = ".cpython-311.a70d0d0a.0.05b5d2f219caaa69.0.0.644.0"


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".venv-dedupe-tmp-1234abcd",  # a temp file of a killed run
        _OBJECT + ".1",  # six parts
        _OBJECT.rsplit(".", 1)[0],  # four parts
        "zz" + _OBJECT[2:],  # not hex
        _OBJECT[1:],  # an odd number of hex digits
        _OBJECT.replace(".644.", ".648."),  # not octal
        _OBJECT.replace(".0.0.", ".x.0."),
        _OBJECT.replace(".644.0", ".644.g"),
    ],
)
def test_what_is_not_an_object_name_parses_to_none(name: str) -> None:
    assert parse_object_name("sha256", "00", name) is None


@pytest.mark.parametrize(
    "name",
    [
        _OBJECT + _PYC_TAIL + ".1",  # fourteen parts
        _OBJECT + _PYC_TAIL[:-1] + "\u00b2",  # a digit int() refuses
        _OBJECT + _PYC_TAIL.replace("05b5d2f219caaa69", "05b5d2f219caaa6"),  # short build
        _OBJECT + _PYC_TAIL.replace("05b5d2f219caaa69", "05B5D2F219CAAA69"),
        _OBJECT + _PYC_TAIL.replace("a70d0d0a", "a70d0d0"),  # odd magic
        _OBJECT + _PYC_TAIL.replace(".0.05b5", ".x.05b5"),  # flags
        _OBJECT + _PYC_TAIL.replace(".644.0", ".9.0"),  # mode not octal
        "zz" + _OBJECT[2:] + _PYC_TAIL,  # the source's digest not hex
        _OBJECT.replace(".644.", ".8.") + _PYC_TAIL,  # the source's mode not octal
    ],
)
def test_what_is_not_a_pyc_name_parses_to_none(name: str) -> None:
    assert parse_pyc_name("sha256", "00", name) is None
    assert parse_pyc_name("sha256", "00", _OBJECT + _PYC_TAIL) is not None
