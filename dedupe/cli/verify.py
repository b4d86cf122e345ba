"""`venv-dedupe verify`: re-hash every store object; name the venvs an edit reached."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_ERRORS, EXIT_OK
from ._lock import add_lock_options, lock_timeout, say_waiting
from ._metrics import add_metrics_option, recording


def register(commands: Any) -> None:
    p = commands.add_parser(
        "verify",
        help="re-hash every store object and name the venvs a damaged one reaches",
        description="Re-hash every store object against its name. For a damaged object "
        "(a file linked to it was edited in place), name every venv file linked to it, its "
        "distribution, and the command that repairs each venv. Exit 1 when anything is wrong.",
    )
    p.add_argument("roots", nargs="*", metavar="ROOT", help="folders to search for venvs")
    p.add_argument("--store", metavar="DIR", help="the store folder (default: as scan)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--repair",
        action="store_true",
        help="move damaged objects to STORE/damaged/ so that no scan links to them again",
    )
    add_metrics_option(p)
    add_lock_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: parsing, and so --help, must not load the machinery (issue #11).
    from ..maintenance import verify
    from ..report.maintenance import render_verify, to_json

    with recording(args, "verify", dry_run=False) as metrics:
        result = verify(
            args.roots,
            store=args.store,
            repair=args.repair,
            lock_timeout=lock_timeout(args),
            on_lock_wait=say_waiting,
        )
        print(to_json(result) if args.json else render_verify(result))
        return metrics.done(EXIT_OK if result.ok else EXIT_ERRORS, result)
