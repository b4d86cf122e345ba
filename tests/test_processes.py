"""processes.running: a real child process, alive and then reaped."""

from __future__ import annotations

import os
import subprocess
import sys

from dedupe.processes import running


def test_a_live_process_runs_and_a_reaped_one_does_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert running(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not running(child.pid)


def test_this_process_runs() -> None:
    assert running(os.getpid())


def test_a_pid_no_process_can_have_counts_as_running() -> None:
    # Its file is kept: what cannot be told is never taken for a killed writer's.
    assert running(1 << 80)
