"""The --metrics-file option of scan, verify and gc: time the run, then write its figures.

The file is written once the run is over, whatever its end: a run that raised (store
locked, interrupted) still writes that it failed, and keeps the last success time. When
the file cannot be written, the run's own output is as it was, stderr says why and what
the run's own exit status was, and the exit status is at least 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._common import EXIT_ERRORS, EXIT_OK

if TYPE_CHECKING:
    from ..report.metrics import Command, Figure, Result


def _prom_path(text: str) -> str:
    if not text.endswith(".prom") or os.path.basename(text) == ".prom":
        raise argparse.ArgumentTypeError(
            f"{text!r} does not end in .prom: node_exporter's textfile collector reads only "
            "*.prom files"
        )
    return text


def add_metrics_option(parser: Any) -> None:
    parser.add_argument(
        "--metrics-file",
        type=_prom_path,
        metavar="PATH",
        help="write the run's figures for node_exporter's textfile collector to PATH (a .prom "
        "file; replaced whole through a temp file in its folder), also when the run fails",
    )


class Recorder:
    """Times one run and writes its figures to the metrics file, if one was asked for."""

    def __init__(self, path: str | None, command: Command, dry_run: bool) -> None:
        self.path = path
        self.command: Command = command
        self.dry_run = dry_run
        self._started = time.monotonic()
        self.written = False

    def done(self, code: int, result: Result) -> int:
        """The exit status: the run's own, or 1 when the run's was 0 and the file could
        not be written."""
        if self.path is None:
            return code
        from ..report.metrics import figures_of, store_paths

        figures = figures_of(result) + self._store_figures(store_paths(result))
        return code if self._write(code, figures) else code or EXIT_ERRORS

    def failed(self) -> None:
        """The command raised: write that it failed, with no figures of its own."""
        if self.path is not None and not self.written:
            self._write(None, [])

    def _store_figures(self, paths: tuple[str, ...]) -> list[Figure]:
        from ..errors import DedupeError
        from ..maintenance.usage import store_usage
        from ..report.metrics import store_figures

        usages = []
        for path in paths:
            try:
                usage = store_usage(path)
            except DedupeError as exc:
                _say(f"warning: the metrics leave out the store {path!r}: {exc}")
                continue
            if usage is not None:
                usages.append(usage)
        return store_figures(usages)

    def _write(self, code: int | None, figures: list[Figure]) -> bool:
        """Write the file (code None: the command raised); False, said on stderr, if not."""
        from ..report.exposition import ExpositionError
        from ..report.metrics import Run, previous_run, render
        from ..report.textfile import MetricsFileError, read_metrics_file, replace_metrics_file

        assert self.path is not None
        self.written = True
        try:
            old = read_metrics_file(self.path)
            try:
                previous = previous_run(old or "", self.command, self.dry_run)
            except ExpositionError as exc:
                raise MetricsFileError(f"{self.path!r} is not venv-dedupe's: {exc}") from None
            for other in previous.others:
                _say(
                    f"warning: {self.path!r} held the figures of `venv-dedupe {other}`, "
                    "replaced now: give each command a metrics file of its own"
                )
            text = render(
                Run(
                    command=self.command,
                    dry_run=self.dry_run,
                    succeeded=code == EXIT_OK,
                    duration_seconds=round(time.monotonic() - self._started, 3),
                    finished_at=round(time.time(), 3),
                    last_success=previous.last_success,
                ),
                figures,
            )
            replace_metrics_file(self.path, text)
        except MetricsFileError as exc:
            if code is None:
                outcome = f"the {self.command} itself did not finish"
            else:
                outcome = f"the {self.command} itself exited {code}"
            _say(f"error: metrics not written: {exc} ({outcome})")
            return False
        return True


def _say(message: str) -> None:
    print(f"venv-dedupe: {message}", file=sys.stderr, flush=True)


@contextmanager
def recording(args: argparse.Namespace, command: Command, dry_run: bool) -> Iterator[Recorder]:
    """A Recorder for the run inside; when the run raises, it writes that it failed."""
    recorder = Recorder(args.metrics_file, command, dry_run)
    try:
        yield recorder
    except BaseException:  # a DedupeError, KeyboardInterrupt, SystemExit: still a failure
        recorder.failed()
        raise
