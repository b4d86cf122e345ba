"""The skip-reason vocabulary: one value and one label each, and the README names them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dedupe.reasons import Reason

README = Path(__file__).resolve().parents[1] / "README.md"


def test_values_are_distinct_and_labelled() -> None:
    values = [r.value for r in Reason]
    assert len(set(values)) == len(values)
    labels = {r: r.label for r in Reason}
    assert all(labels.values())
    assert str(Reason.PER_INSTALL) == f"{Reason.PER_INSTALL}" == "per-install"


def test_a_reason_is_its_value_in_json_and_as_a_key() -> None:
    counts = {Reason.ZERO_BYTES: 2}
    assert json.loads(json.dumps(counts)) == {"zero-bytes": 2}
    assert counts == {"zero-bytes": 2}  # memos load plain strings: they must meet


@pytest.mark.parametrize(
    ("source", "pyc"),
    [
        pytest.param(Reason.LINK_FAILED, Reason.PYC_LINK_FAILED, id="link-failed"),
        pytest.param(Reason.CHANGED_DURING_SCAN, Reason.PYC_CHANGED, id="changed"),
        pytest.param(Reason.UNREADABLE, Reason.PYC_UNREADABLE, id="unreadable"),
        pytest.param(Reason.XATTRS_DIFFER, Reason.XATTRS_DIFFER, id="xattrs-stays"),
    ],
)
def test_a_pyc_failure_is_counted_as_a_pyc_reason(source: Reason, pyc: Reason) -> None:
    assert source.for_pyc is pyc
    assert pyc.label


def test_the_readme_names_every_reason_a_report_can_show() -> None:
    text = README.read_text(encoding="utf-8")
    listed = text[text.index("Skip reasons:") :]
    listed = listed[: listed.index("\n\n")]
    named = set(re.findall(r"`([a-z-]+)`", listed)) - {"pyc.skipped"}
    reported = {r.value for r in Reason} - {Reason.BYTECODE.value}  # never reported
    assert named == reported
