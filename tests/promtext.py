"""A strict reader of the metrics files venv-dedupe writes, apart from its own parser.

One regex per kind of line, as the text format (version 0.0.4) describes them, and the
rules a scrape by node_exporter would fail on, so that the tests do not check the code
with itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HELP = re.compile(r"# HELP (venv_dedupe_[a-z_]+) (\S.*)")
TYPE = re.compile(r"# TYPE (venv_dedupe_[a-z_]+) (gauge)")
_VALUE = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_LABEL_VALUE = r'(?:[^"\\\n]|\\[\\"n])*'
SAMPLE = re.compile(
    r"(venv_dedupe_[a-z_]+)"
    rf'\{{((?:[a-z_]+="{_LABEL_VALUE}")(?:,[a-z_]+="{_LABEL_VALUE}")*)\}}'
    rf" ({_VALUE})"
)
_PAIR = re.compile(rf'([a-z_]+)="({_LABEL_VALUE})"')

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Family:
    help: str
    type: str
    label_names: tuple[str, ...]
    samples: dict[Labels, float]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], text)


def read_prom(text: str) -> dict[str, Family]:
    """name -> its family; AssertionError at the first line out of the rules."""
    assert text.endswith("\n"), "the last line must end with a line feed"
    lines = text[:-1].split("\n")
    families: dict[str, Family] = {}
    at = 0
    while at < len(lines):
        help_line, type_line = HELP.fullmatch(lines[at]), TYPE.fullmatch(lines[at + 1])
        assert help_line and type_line, f"lines {at + 1}-{at + 2}: {lines[at : at + 2]!r}"
        name = help_line[1]
        assert type_line[1] == name and name not in families, f"line {at + 2}: {name}"
        at += 2
        samples: dict[Labels, float] = {}
        names: set[tuple[str, ...]] = set()
        while at < len(lines) and not lines[at].startswith("#"):
            sample = SAMPLE.fullmatch(lines[at])
            assert sample and sample[1] == name, f"line {at + 1}: {lines[at]!r}"
            pairs = [(k, _unescape(v)) for k, v in _PAIR.findall(sample[2])]
            labels = frozenset(pairs)
            assert len(labels) == len({k for k, _ in pairs}) == len(pairs), lines[at]
            assert labels not in samples, f"line {at + 1}: a second sample of {labels}"
            samples[labels] = float(sample[3])
            names.add(tuple(k for k, _ in pairs))
            at += 1
        assert len(names) == 1, f"{name}: samples with label names {names}"
        families[name] = Family(help_line[2], type_line[2], names.pop(), samples)
    return families


def value(families: dict[str, Family], name: str, **labels: str) -> float:
    """The one sample of name whose labels include these."""
    wanted = set(labels.items())
    found = [v for k, v in families[name].samples.items() if wanted <= k]
    assert len(found) == 1, f"{name} {labels}: {families[name].samples}"
    return found[0]
