"""`venv-dedupe scan`: find venvs and link their duplicate files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import EXIT_ERRORS, EXIT_OK, progress_bars
from ._lock import add_lock_options, lock_timeout, say_waiting
from ._metrics import add_metrics_option, recording


def register(commands: Any) -> None:
    p = commands.add_parser(
        "scan",
        help="find venvs and link their duplicate files",
        description="Find every venv and package tree (--target, --prefix, user site) under "
        "ROOTs (default: the well-known venv folders and the user sites), prove installed "
        "files against RECORD and share duplicates through a store: by reflinks where the "
        "filesystem has copy-on-write, else by hardlinks.",
    )
    p.add_argument(
        "roots", nargs="*", metavar="ROOT", help="folders to search for venvs and package trees"
    )
    p.add_argument("--store", metavar="DIR", help="the store folder (on the venvs' filesystem)")
    p.add_argument(
        "-n", "--dry-run", action="store_true", help="report what would happen; change nothing"
    )
    p.add_argument(
        "--no-share-pyc",
        dest="share_pyc",
        action="store_false",
        help="keep .pyc files private (they are still kept valid for their linked source)",
    )
    p.add_argument(
        "--link-mode",
        choices=("auto", "hardlink", "reflink"),
        default="auto",
        help="how files share their store's copy: reflink shares data blocks only (each "
        "file keeps its inode, owner, mode and times; XFS with reflink, btrfs), hardlink "
        "shares one inode; auto (the default): reflink where the filesystem can",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="walk every venv, even those whose folders and RECORDs are as the last scan left them",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="processes to share the work between (default: one per CPU, at most 8)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    add_metrics_option(p)
    add_lock_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: parsing, and so --help, must not load the machinery (issue #11).
    from ..report.scan import render_problems, render_text, to_json
    from ..scan import scan

    with recording(args, "scan", args.dry_run) as metrics:
        progress, close = progress_bars(not args.quiet and not args.json)
        try:
            result = scan(
                args.roots,
                store=args.store,
                dry_run=args.dry_run,
                share_pyc=args.share_pyc,
                link_mode=args.link_mode,
                full=args.full,
                jobs=args.jobs,
                progress=progress,
                lock_timeout=lock_timeout(args),
                on_lock_wait=say_waiting,
            )
        finally:
            close()
        if args.json:
            print(to_json(result))
        elif args.quiet:
            problems = render_problems(result)
            if problems:
                print(problems, file=sys.stderr)
        else:
            print(render_text(result))
        return metrics.done(EXIT_ERRORS if result.errors else EXIT_OK, result)
