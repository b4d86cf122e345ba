"""The lock options of the commands that change a store: how long to wait for another run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import DEFAULT_LOCK_TIMEOUT


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def add_lock_options(parser: Any) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="when another run holds the store's lock, wait this long for it "
        f"(default {DEFAULT_LOCK_TIMEOUT:g}), then exit 2",
    )
    group.add_argument(
        "--no-wait",
        action="store_true",
        help="exit 2 at once when another run holds the store's lock",
    )


def lock_timeout(args: argparse.Namespace) -> float:
    return 0.0 if args.no_wait else float(args.lock_timeout)


def say_waiting(message: str) -> None:
    """Told once when the lock is busy: a silent wait would look like a hang."""
    print(f"venv-dedupe: {message}", file=sys.stderr, flush=True)
