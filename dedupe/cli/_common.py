"""What the commands share: exit codes and tqdm progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_OK, EXIT_ERRORS, EXIT_FATAL = 0, 1, 2


def progress_bars(
    enabled: bool,
) -> tuple[Callable[[str, int, int], None] | None, Callable[[], None]]:
    """tqdm bars on stderr when it is a terminal; nothing in cron logs or pipes."""
    if not enabled or not sys.stderr.isatty():
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
