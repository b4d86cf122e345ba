"""Reading and replacing the metrics file, so that a scrape never reads half of one.

node_exporter's textfile collector reads every *.prom file of its folder at each scrape,
whenever that comes. So the text goes to a temp file in the same folder (a rename within
one filesystem is atomic, a copy across is not), named so that the collector skips it
(a leading dot and no .prom ending), is fsync'ed, made 0644 (node_exporter often runs as
another user than the cron job), and renamed over the file; the folder is fsync'ed last
so that the rename survives a crash. A failure leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile

from ..errors import DedupeError
from ..processes import running

__all__ = ["MAX_BYTES", "MetricsFileError", "read_metrics_file", "replace_metrics_file"]

MAX_BYTES = 1 << 20  # far beyond what venv-dedupe writes; more is not its file
MODE = 0o644


class MetricsFileError(DedupeError):
    """The metrics file could not be read back or replaced; the message says why."""


def _temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def read_metrics_file(path: str) -> str | None:
    """The text of the file about to be replaced (None when there is none): what it
    says of the last success must survive a failed run. A symlink, a folder or anything
    but a regular file there is refused rather than replaced."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MetricsFileError(f"{path!r} is a symlink; not replaced") from None
        raise MetricsFileError(f"cannot read {path!r}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MetricsFileError(f"{path!r} is not a regular file; not replaced")
        data = os.read(fd, MAX_BYTES + 1)
    except OSError as exc:
        raise MetricsFileError(f"cannot read {path!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise MetricsFileError(f"{path!r} is larger than a metrics file venv-dedupe writes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MetricsFileError(f"{path!r} is not UTF-8 text; not replaced") from None


def replace_metrics_file(path: str, text: str) -> None:
    """Put text at path through a temp file in its folder, fsync and rename."""
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MetricsFileError(f"the folder {folder!r} of {path!r} does not exist")
    _remove_leftovers(folder, name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(name), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise MetricsFileError(
            f"cannot write in the folder {folder!r} of {path!r}: {exc.strerror}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fchmod(f.fileno(), MODE)  # mkstemp makes it 0600, whatever the umask
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise MetricsFileError(f"cannot write {path!r}: {exc.strerror}") from None
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    # The file is in place already; a folder that refuses fsync only weakens what a crash
    # in the next seconds could undo, so it is not an error.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_leftovers(folder: str, name: str) -> None:
    """Remove the temp files of this file that a killed run left: `.NAME.PID.xxx.tmp`
    whose PID no longer runs (a live run may be writing its own)."""
    stem = f".{name}."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for entry in names:
        pid_text, _, rest = entry.removeprefix(stem).partition(".")
        if not (entry.startswith(stem) and rest.endswith(".tmp") and rest != ".tmp"):
            continue
        if pid_text.isdigit() and not _alive(int(pid_text)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process writes one file at a time: any other of ours is old
    return running(pid)
