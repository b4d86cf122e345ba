"""`venv-dedupe gc`: remove store objects that no venv uses any more."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_ERRORS, EXIT_OK
from ._lock import add_lock_options, lock_timeout, say_waiting
from ._metrics import add_metrics_option, recording


def register(commands: Any) -> None:
    p = commands.add_parser(
        "gc",
        help="remove store objects that no venv uses any more",
        description="Remove, under the store's lock, the objects that no venv uses any more "
        "(link count 1) and the folders left empty; report files and bytes freed. Without "
        "--store, the user's store (~/.local/share/venv-dedupe/store).",
    )
    p.add_argument("--store", metavar="DIR", help="the store folder")
    p.add_argument(
        "-n", "--dry-run", action="store_true", help="report what would go; remove nothing"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_metrics_option(p)
    add_lock_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: parsing, and so --help, must not load the machinery (issue #11).
    from ..maintenance import gc
    from ..report.maintenance import render_gc, to_json

    with recording(args, "gc", args.dry_run) as metrics:
        result = gc(
            store=args.store,
            dry_run=args.dry_run,
            lock_timeout=lock_timeout(args),
            on_lock_wait=say_waiting,
        )
        print(to_json(result) if args.json else render_gc(result))
        return metrics.done(EXIT_ERRORS if result.errors else EXIT_OK, result)
