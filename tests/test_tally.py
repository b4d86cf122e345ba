"""A venv's tally: which venvs pass 2 walks again, judged from pass 1's census (pure: made-up
memos and a real Census, no disk)."""

from __future__ import annotations

from dedupe.census import Census
from dedupe.memo import CANDIDATE, Memo
from dedupe.scan.tally import Tally

DEVICE = 7


def _memo(*candidates: tuple[bytes, int]) -> Memo:
    """A pass-1 memo of candidates given as (census key, inode), each with one link."""
    packed = b"".join(CANDIDATE.pack(key.ljust(16, b"-"), ino, False) for key, ino in candidates)
    return Memo(len(candidates), len(candidates), 0, 0, 0, False, {}, (), packed)


def _recalled(census: Census, *memos: Memo) -> list[Tally]:
    tallies = [Tally(f"/venvs/{i}") for i in range(len(memos))]
    for tally, memo in zip(tallies, memos, strict=True):
        tally.recall(memo, census, DEVICE)
    return tallies


def test_pass_2_walks_the_venvs_that_hold_a_content_worth_linking() -> None:
    census = Census({})
    first, copy, alone = _recalled(
        census,
        _memo((b"shared", 1), (b"only-first", 2)),
        _memo((b"other", 3), (b"shared", 4)),  # its second candidate is the first's twin
        _memo((b"unique", 5)),
    )
    worthwhile = census.worthwhile_prefixes()
    assert [t.walk_again(worthwhile) for t in (first, copy, alone)] == [True, True, False]


def test_a_venv_known_worth_walking_keeps_no_keys() -> None:
    """Once one of its candidates is worth linking when counted, the venv is walked in any
    case: its keys are not kept (a thousand copies of a venv keep the first copy's only)."""
    census = Census({})
    first, *copies = _recalled(census, *[_memo((b"a", i), (b"b", 100 + i)) for i in range(5)])
    assert len(first.candidate_keys) == 2 and not first.worth_walking
    for tally in copies:
        assert tally.worth_walking and len(tally.candidate_keys) == 0
    worthwhile = census.worthwhile_prefixes()
    assert all(t.walk_again(worthwhile) for t in (first, *copies))
    assert len(first.candidate_keys) == 0  # let go once judged


def test_another_name_of_a_counted_inode_is_no_second_holder() -> None:
    """Two names of one inode (a hardlink between two venvs) hold one copy: nothing to
    link, so neither venv is walked for it."""
    census = Census({})
    packed = CANDIDATE.pack(b"linked".ljust(16, b"-"), 9, True)
    one, two = _recalled(census, *[Memo(1, 1, 0, 0, 0, False, {}, (), packed)] * 2)
    assert not two.worth_walking
    worthwhile = census.worthwhile_prefixes()
    assert [t.walk_again(worthwhile) for t in (one, two)] == [False, False]


def test_a_venv_with_a_pyc_to_share_is_walked() -> None:
    census = Census({})
    (tally,) = _recalled(census, Memo(1, 1, 1, 1, 0, True, {}, (), b""))
    assert tally.walk_again(census.worthwhile_prefixes())
