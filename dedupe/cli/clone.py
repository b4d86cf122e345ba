"""`venv-dedupe clone`: a new venv with SRC's packages, sharing every proven file."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_ERRORS, EXIT_OK
from ._lock import add_lock_options, lock_timeout, say_waiting


def register(commands: Any) -> None:
    p = commands.add_parser(
        "clone",
        help="make a new venv with the same packages as SRC, sharing its files",
        description="Make DST (absent, or an empty folder) a venv of SRC's base interpreter "
        "with every distribution of SRC: each file proven against RECORD is shared with its "
        "store object (a hardlink, or a reflink where the store's filesystem has "
        "copy-on-write), after SRC's proven files are adopted into the store as a scan "
        "would; scripts, RECORD and .pth files are written for DST, anything unproven is "
        "copied. DST appears whole or not at all.",
    )
    p.add_argument("src", metavar="SRC", help="the venv to clone")
    p.add_argument("dst", metavar="DST", help="the new venv's folder (on SRC's filesystem)")
    p.add_argument("--store", metavar="DIR", help="the store folder (default: as scan)")
    p.add_argument(
        "-n", "--dry-run", action="store_true", help="say what it would do; change nothing"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_lock_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: parsing, and so --help, must not load the machinery (issue #11).
    from ..clone import clone
    from ..report.clone import render_clone, to_json

    result = clone(
        args.src,
        args.dst,
        store=args.store,
        dry_run=args.dry_run,
        lock_timeout=lock_timeout(args),
        on_lock_wait=say_waiting,
    )
    print(to_json(result) if args.json else render_clone(result))
    return EXIT_ERRORS if result.errors else EXIT_OK
