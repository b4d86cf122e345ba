"""Prometheus' text exposition format (version 0.0.4): escaping, lines, and a strict reader.

Pure functions over text, no file: dedupe.report.metrics says which figures go in,
dedupe.report.textfile writes them. The rules kept here, from the format's description:
lines end in a line feed, the last one too; `# HELP name text` escapes a backslash and a
line feed in its text; `# TYPE name type` comes before the first sample of its name and
once per name; label values escape a backslash, a double quote and a line feed; all the
lines of one name form one group; no sample carries a timestamp, since node_exporter's
textfile collector refuses a whole file that has one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "METRIC_NAME",
    "ExpositionError",
    "Sample",
    "escape_help",
    "escape_label_value",
    "format_value",
    "group_lines",
    "parse_samples",
    "sample_line",
]

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
# A value as Go's strconv.ParseFloat reads it in this format; Python's float() also takes
# "1_000" and "infinity", which Prometheus would refuse, so a regex comes first.
_VALUE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN")
_SAMPLE_HEAD = re.compile(r"[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*')
_UNESCAPE = re.compile(r"\\(.)")


class ExpositionError(ValueError):
    """Text that is not in the exposition format: names the line and what is wrong."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of a metric: its name, its labels in the order written, its value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """An int as its digits, a float as Python's shortest repr; Inf and NaN as Go spells them."""
    if isinstance(value, int):
        return str(int(value))  # int(): True is 1, not "True"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def sample_line(name: str, labels: Sequence[tuple[str, str]], value: float) -> str:
    pairs = ",".join(f'{key}="{escape_label_value(text)}"' for key, text in labels)
    return f"{name}{{{pairs}}} {format_value(value)}" if pairs else f"{name} {format_value(value)}"


def group_lines(name: str, help_text: str, kind: str, samples: Iterable[Sample]) -> list[str]:
    """The HELP and TYPE lines of one name, then its samples: one uninterrupted group."""
    if not METRIC_NAME.fullmatch(name) or kind not in TYPES:
        raise ValueError(f"not a metric name and type: {name!r}, {kind!r}")
    lines = [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]
    seen: set[tuple[tuple[str, str], ...]] = set()
    for sample in samples:
        key = tuple(sorted(sample.labels))
        if sample.name != name or key in seen:
            raise ValueError(f"sample {sample!r} does not belong in the group of {name!r}")
        seen.add(key)
        lines.append(sample_line(name, sample.labels, sample.value))
    return lines


def parse_samples(text: str) -> list[Sample]:
    """Every sample of text, strictly: a line that is not a comment, a HELP or TYPE line,
    or a sample without timestamp raises ExpositionError naming it (line numbers from 1).
    The checks are those a scrape would fail on: one HELP and one TYPE per name, before
    its samples; one group per name; one sample per set of labels."""
    if text and not text.endswith("\n"):
        raise ExpositionError("the last line does not end with a line feed")
    samples: list[Sample] = []
    headers: set[tuple[str, str]] = set()  # (HELP or TYPE, name)
    done: set[str] = set()  # names whose group has ended
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    sampled: set[str] = set()
    current: str | None = None
    for number, line in enumerate(text.split("\n")[:-1] if text else [], start=1):
        try:
            if not line.strip():
                continue
            if line.lstrip().startswith("#"):
                header = _header(line)
                if header is None:
                    continue  # any other comment
                name = header[1]
                if header in headers or name in sampled:
                    raise ExpositionError(f"a second {header[0]} line, or one after samples")
                headers.add(header)
            else:
                sample = _sample(line)
                name = sample.name
                key = (name, tuple(sorted(sample.labels)))
                if key in series:
                    raise ExpositionError("a second sample of the same series")
                series.add(key)
                sampled.add(name)
                samples.append(sample)
            if name != current:
                if name in done:
                    raise ExpositionError(f"{name!r} again after its group ended")
                if current is not None:
                    done.add(current)
                current = name
        except ExpositionError as exc:
            raise ExpositionError(f"line {number}: {exc}: {line[:200]!r}") from None
    return samples


def _header(line: str) -> tuple[str, str] | None:
    """("HELP" or "TYPE", the name it is about); None for any other comment."""
    tokens = line.lstrip()[1:].split(None, 2)
    if not tokens or tokens[0] not in ("HELP", "TYPE"):
        return None
    if len(tokens) < 2 or not METRIC_NAME.fullmatch(tokens[1]):
        raise ExpositionError(f"a {tokens[0]} line without a metric name")
    if tokens[0] == "TYPE" and (len(tokens) != 3 or tokens[2].strip() not in TYPES):
        raise ExpositionError("a TYPE line without a known type")
    return tokens[0], tokens[1]


def _sample(line: str) -> Sample:
    head = _SAMPLE_HEAD.match(line)
    if head is None:
        raise ExpositionError("not a sample")
    at, labels = head.end(), []
    brace = len(line) - len(line[at:].lstrip(" \t"))
    if line.startswith("{", brace):
        at = brace + 1
        while not line.startswith("}", at):
            pair = _LABEL.match(line, at)
            if pair is None:
                raise ExpositionError("a malformed label")
            labels.append((pair[1], _UNESCAPE.sub(_unescaped, pair[2])))
            at = pair.end()
            if line.startswith(",", at):
                at += 1
            elif not line.startswith("}", at):
                raise ExpositionError("labels not closed by '}'")
        at += 1
    if len({k for k, _ in labels}) != len(labels):
        raise ExpositionError("a label given twice")
    rest = line[at:]
    if rest[:1] not in (" ", "\t") or len(rest.split()) != 1:
        raise ExpositionError("not one value after the name (timestamps are refused)")
    value = rest.split()[0]
    if not _VALUE.fullmatch(value):
        raise ExpositionError(f"{value!r} is not a value")
    return Sample(head[1], tuple(labels), float(value))


def _unescaped(match: re.Match[str]) -> str:
    char = match[1]
    if char not in ("\\", '"', "n"):
        raise ExpositionError(f"an unknown escape \\{char} in a label value")
    return "\n" if char == "n" else char
