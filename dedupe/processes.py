"""Whether the process that named a file of ours still runs."""

from __future__ import annotations

import os

__all__ = ["running"]


def running(pid: int) -> bool:
    """Whether a process with this pid exists, of any user. Where that cannot be told
    (another user's process, a pid out of range) it counts as running: callers keep what
    a live process may still be writing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True
