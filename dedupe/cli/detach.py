"""`venv-dedupe detach`: give venvs private copies of every file they share."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_ERRORS, EXIT_OK
from ._lock import add_lock_options, lock_timeout, say_waiting


def register(commands: Any) -> None:
    p = commands.add_parser(
        "detach",
        help="give venvs private copies of every file they share with the store",
        description="Replace every file of each VENV that is a store object by a private "
        "copy, atomically per file, bytes unchanged: before editing installed files in place "
        "or moving the venv to another filesystem. Refuses when the filesystem lacks the room.",
    )
    p.add_argument("venvs", nargs="+", metavar="VENV", help="the venvs to detach")
    p.add_argument("--store", metavar="DIR", help="the store folder (default: as scan)")
    p.add_argument(
        "-n", "--dry-run", action="store_true", help="say what it would do and the space"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_lock_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: parsing, and so --help, must not load the machinery (issue #11).
    from ..maintenance import detach
    from ..report.maintenance import render_detach, to_json

    result = detach(
        args.venvs,
        store=args.store,
        dry_run=args.dry_run,
        lock_timeout=lock_timeout(args),
        on_lock_wait=say_waiting,
    )
    print(to_json(result) if args.json else render_detach(result))
    trouble = result.errors or result.skipped_venvs or not all(c.fits for c in result.space)
    return EXIT_ERRORS if trouble else EXIT_OK
