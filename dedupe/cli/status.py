"""`venv-dedupe status`: what sharing saves now, per venv and per distribution."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_OK


def register(commands: Any) -> None:
    p = commands.add_parser(
        "status",
        help="show what sharing saves now, per venv and per distribution",
        description="Show what the store's sharing saves now, in total, per venv and per "
        "distribution, how many objects the store holds and how many no venv uses. "
        "Changes nothing.",
    )
    p.add_argument("roots", nargs="*", metavar="ROOT", help="folders to search for venvs")
    p.add_argument("--store", metavar="DIR", help="the store folder (default: as scan)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: parsing, and so --help, must not load the machinery (issue #11).
    from ..maintenance import status
    from ..report.maintenance import render_status, to_json

    result = status(args.roots, store=args.store)
    print(to_json(result) if args.json else render_status(result))
    return EXIT_OK
