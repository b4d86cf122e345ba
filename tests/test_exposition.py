"""The text exposition format on its own: escaping, sample lines and the strict reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedupe.report.exposition import (
    ExpositionError,
    Sample,
    escape_help,
    escape_label_value,
    format_value,
    group_lines,
    parse_samples,
    sample_line,
)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        pytest.param("plain /srv/store", "plain /srv/store", id="plain"),
        pytest.param("a\\b", "a\\\\b", id="backslash"),
        pytest.param('say "hi"', 'say \\"hi\\"', id="double-quote"),
        pytest.param("two\nlines", "two\\nlines", id="line-feed"),
        pytest.param('\\"\n', '\\\\\\"\\n', id="all-three"),
        pytest.param("tab\tand 'single'", "tab\tand 'single'", id="others-stay"),
    ],
)
def test_label_values_escape_backslash_quote_and_line_feed(raw: str, escaped: str) -> None:
    assert escape_label_value(raw) == escaped


def test_help_escapes_backslash_and_line_feed_not_quotes() -> None:
    assert escape_help('a\\b\n"c"') == 'a\\\\b\\n"c"'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(0, "0", id="zero"),
        pytest.param(27308032, "27308032", id="int"),
        pytest.param(True, "1", id="bool"),
        pytest.param(7.016, "7.016", id="float"),
        pytest.param(float("inf"), "+Inf", id="inf"),
        pytest.param(float("-inf"), "-Inf", id="minus-inf"),
        pytest.param(float("nan"), "NaN", id="nan"),
    ],
)
def test_values_as_the_format_spells_them(value: float, text: str) -> None:
    assert format_value(value) == text


def test_a_sample_line_with_and_without_labels() -> None:
    assert sample_line("x_bytes", [("store", 'a"b')], 3) == 'x_bytes{store="a\\"b"} 3'
    assert sample_line("x_bytes", [], 3) == "x_bytes 3"


def test_a_group_is_help_type_then_samples_and_refuses_a_series_twice() -> None:
    samples = [Sample("x", (("a", "1"),), 1), Sample("x", (("a", "2"),), 2)]
    assert group_lines("x", "what x is", "gauge", samples) == [
        "# HELP x what x is",
        "# TYPE x gauge",
        'x{a="1"} 1',
        'x{a="2"} 2',
    ]
    with pytest.raises(ValueError, match="does not belong"):
        group_lines("x", "", "gauge", [samples[0], samples[0]])
    with pytest.raises(ValueError, match="does not belong"):
        group_lines("x", "", "gauge", [Sample("y", (), 1)])
    with pytest.raises(ValueError, match="not a metric name"):
        group_lines("x-y", "", "gauge", [])


# The format's own example, trimmed to what has no timestamp.
EXAMPLE = """\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027
http_requests_total{method="post",code="400"}    3

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",\
error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero",} +Inf
empty_labels{} -3.5
"""


def test_the_formats_own_example_reads() -> None:
    samples = parse_samples(EXAMPLE)
    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("http_requests_total", (("method", "post"), ("code", "200")), 1027.0),
        ("http_requests_total", (("method", "post"), ("code", "400")), 3.0),
        (
            "msdos_file_access_time_seconds",
            (("path", "C:\\DIR\\FILE.TXT"), ("error", 'Cannot find file:\n"FILE.TXT"')),
            1.458255915e9,
        ),
        ("metric_without_timestamp_and_labels", (), 12.47),
        ("something_weird", (("problem", "division by zero"),), float("inf")),
        ("empty_labels", (), -3.5),
    ]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param("a 1", "line feed", id="no-final-line-feed"),
        pytest.param("a 1 1395066363000\n", "timestamps", id="timestamp"),
        pytest.param("a\n", "one value", id="no-value"),
        pytest.param("a 1_000\n", "not a value", id="python-only-value"),
        pytest.param("a infinity\n", "not a value", id="go-refuses-infinity"),
        pytest.param('a{b="1" 1\n', "not closed", id="unclosed-labels"),
        pytest.param("a{b=1} 1\n", "malformed label", id="unquoted-value"),
        pytest.param('a{b="\\t"} 1\n', "unknown escape", id="bad-escape"),
        pytest.param('a{b="1",b="2"} 1\n', "twice", id="label-twice"),
        pytest.param('a{b="1"} 1\na{b="1"} 2\n', "same series", id="series-twice"),
        pytest.param('a 1\nb 1\na{x="1"} 2\n', "group ended", id="group-interrupted"),
        pytest.param("# TYPE a gauge\n# TYPE a gauge\n", "second TYPE", id="type-twice"),
        pytest.param("# HELP a x\n# HELP a y\n", "second HELP", id="help-twice"),
        pytest.param("a 1\n# TYPE a gauge\n", "after samples", id="type-after-samples"),
        pytest.param("# TYPE a meter\n", "known type", id="unknown-type"),
        pytest.param("# HELP 1a x\n", "metric name", id="bad-name"),
        pytest.param("a-b 1\n", "one value", id="dash-in-name"),
    ],
)
def test_text_out_of_the_format_is_refused_naming_the_line(text: str, complaint: str) -> None:
    with pytest.raises(ExpositionError, match=complaint) as caught:
        parse_samples(text)
    if text.endswith("\n"):
        assert str(caught.value).startswith("line ")


def test_comments_and_blank_lines_are_no_samples() -> None:
    assert parse_samples("") == []
    assert parse_samples("# just a comment\n\n   \n#\n") == []


label_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(values=st.lists(label_values, min_size=1, max_size=3), value=st.integers(-(2**53), 2**53))
def test_a_sample_line_reads_back_as_written(values: list[str], value: int) -> None:
    labels = tuple((f"l{i}", v) for i, v in enumerate(values))
    line = sample_line("venv_dedupe_x", labels, value)
    assert "\n" not in line
    assert parse_samples(line + "\n") == [Sample("venv_dedupe_x", labels, float(value))]
