"""The venv-dedupe command line: one module per command; this one parses and dispatches.

Exit codes: 0 done; 1 done, but some files could not be handled because of errors (or
the --metrics-file could not be written); 2 bad usage or a fatal problem (store locked
or unusable). DedupeError becomes exit 2 here and nowhere else.

Parsing imports argparse-level code only: each command module imports its machinery when
the command runs, so `--help` and `--version` cost an interpreter start and little more.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import DedupeError
from . import clone, detach, gc, scan, status, verify
from ._common import EXIT_FATAL

COMMANDS = (scan, status, verify, detach, gc, clone)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_FATAL, f"venv-dedupe: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="venv-dedupe",
        description="Share identical installed files across Python virtualenvs with hardlinks "
        "into a content-addressed store, verified against each distribution's RECORD.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except DedupeError as exc:
        print(f"venv-dedupe: error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("venv-dedupe: interrupted; every file is whole, rerun to finish", file=sys.stderr)
        return 130
    return code
