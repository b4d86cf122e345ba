"""The venv-dedupe command line: parse arguments, call the library, render, exit.

Exit codes: 0 done; 1 done, but some files could not be handled because of errors;
2 bad usage or a fatal problem (store locked or unusable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from . import __version__
from .errors import DedupeError
from .report import render_problems, render_text, to_json
from .scan import scan

EXIT_OK, EXIT_ERRORS, EXIT_FATAL = 0, 1, 2


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
    p = commands.add_parser(
        "scan",
        help="find venvs and link their duplicate files",
        description="Find every venv under ROOTs (default: the well-known venv folders), "
        "prove installed files against RECORD and replace duplicates by hardlinks.",
    )
    p.add_argument("roots", nargs="*", metavar="ROOT", help="folders to search for venvs")
    p.add_argument("--store", metavar="DIR", help="the store folder (on the venvs' filesystem)")
    p.add_argument(
        "-n", "--dry-run", action="store_true", help="report what would happen; change nothing"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    return parser


def _progress_bars(
    enabled: bool,
) -> tuple[Callable[[str, int, int], None] | None, Callable[[], None]]:
    """tqdm bars on stderr when it is a terminal; nothing in cron logs or pipes."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bars: dict[str, tqdm[NoReturn]] = {}
    labels = {"examine": "examining venvs", "link": "linking"}

    def update(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = tqdm(
                total=total,
                desc=labels.get(phase, phase),
                unit="venv",
                file=sys.stderr,
                leave=False,
            )
        bar.update(done - bar.n)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress, close = _progress_bars(sys.stderr.isatty() and not args.quiet and not args.json)
    try:
        result = scan(args.roots, store=args.store, dry_run=args.dry_run, progress=progress)
    except DedupeError as exc:
        close()
        print(f"venv-dedupe: error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        close()
        print("venv-dedupe: interrupted; every file is whole, rerun to finish", file=sys.stderr)
        return 130
    close()
    if args.json:
        print(to_json(result))
    elif args.quiet:
        problems = render_problems(result)
        if problems:
            print(problems, file=sys.stderr)
    else:
        print(render_text(result))
    return EXIT_ERRORS if result.errors else EXIT_OK
