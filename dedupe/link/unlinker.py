"""Freeing the venv files that a swap displaced: at once, or in background threads from
the store's trash folder (Unlinker)."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

from .objects import make_folders

__all__ = ["Discard", "Unlinker", "unlink_now"]

# Removes the temp name (in the folder fd) of a displaced file, given its lstat and the
# path of the venv file it was: unlink_now, or an Unlinker.
Discard = Callable[[int, str, os.stat_result, str], None]


def unlink_now(fd: int, name: str, st: os.stat_result, shown: str) -> None:
    os.unlink(name, dir_fd=fd)


class Unlinker:
    """Frees displaced files in background threads, out of their venv folders.

    Freeing a file's blocks is the largest single cost of a first run: a few hundred
    microseconds per file in the kernel on a filesystem mounted with `discard`. So the
    file's last name is renamed into the store's trash folder at once (its venv folder
    must not grow by the temp names of files waiting to be freed) and unlinked there by a
    thread while the scan goes on; the threads are handed names in batches, since waking
    one costs about as much as the rename. A file with other names is unlinked at once:
    that frees nothing, and its other names must see their new link count and ctime
    before the scan stats them. A name left in the trash by a kill is removed by the next
    run. close() waits for every removal; failures are kept as (path, message), by the
    path of the venv file the copy was (its temp name means nothing to a user).
    """

    BATCH = 64

    def __init__(self, trash: str, threads: int = 4, backlog: int = 8) -> None:
        self._trash = trash
        self._threads_wanted = threads
        self._threads: list[threading.Thread] = []  # started on first use, with the trash
        # Bounded: the trash holds at most (backlog + threads + 1) * BATCH waiting files.
        self._queue: queue.Queue[list[tuple[str, str]] | None] = queue.Queue(backlog)
        self._batch: list[tuple[str, str]] = []  # (path in the trash, venv file it was)
        self.failures: list[tuple[str, str]] = []
        self._trash_made = False

    def __call__(self, fd: int, name: str, st: os.stat_result, shown: str) -> None:
        """Take the displaced file name (in the folder fd), once the venv file shown.
        Never raises: the swap before it is done, so a file that cannot be freed is a
        failure to report (its temp name is removed by the next run), not a link that
        failed."""
        if not self._threads:
            self._start()
        try:
            if st.st_nlink > 1 or not self._trash_made:
                os.unlink(name, dir_fd=fd)
                return
            binned = os.path.join(self._trash, name)
            try:
                os.rename(name, binned, src_dir_fd=fd)
            except OSError:
                os.unlink(name, dir_fd=fd)
                return
        except OSError as exc:
            self._failed(shown, f"beside it as {name!r}", exc)
            return
        self._batch.append((binned, shown))
        if len(self._batch) >= self.BATCH:
            self._queue.put(self._batch)
            self._batch = []

    def _start(self) -> None:
        try:
            make_folders(self._trash)  # on first use, as a dry run foresees
            self._trash_made = True
        except OSError:
            self._trash_made = False  # a full disk, say: unlink in place instead
        for _ in range(self._threads_wanted):
            worker = threading.Thread(target=self._work, name="venv-dedupe-unlink", daemon=True)
            worker.start()
            self._threads.append(worker)

    def _work(self) -> None:
        while (batch := self._queue.get()) is not None:
            for binned, shown in batch:
                try:
                    os.unlink(binned)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self._failed(shown, f"at {binned!r}", exc)

    def _failed(self, shown: str, where: str, exc: OSError) -> None:
        # list.append is atomic: the threads need no lock to add theirs.
        message = f"cannot free its replaced copy, left {where} for the next run to remove"
        self.failures.append((shown, f"{message}: {exc.strerror}"))

    def close(self) -> None:
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []
        for _ in self._threads:
            self._queue.put(None)
        for worker in self._threads:
            worker.join()
        self._threads.clear()
