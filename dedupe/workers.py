"""Forked worker processes that share the scan's passes between CPU cores.

A scan is mostly system calls and Python between them, one file at a time, and Python
runs one thread at a time: only processes use a second core. Each pass splits its work
into parts that need nothing from each other (venvs for the walks; file sizes for pass
2), runs the first part itself and every other part in a child forked after the parent
has built what all parts read (store indexes, census). Forking keeps that state without
copying or pickling it; what a child finds travels back, pickled, through a pipe, one
message per step.

Workers hold the store's lock with the parent (a flock belongs to the open file, which
fork shares; they close the locks of scans in this process's other threads), so no other
run starts while one of them still works, and they die with the parent
(PR_SET_PDEATHSIG): a killed scan leaves no orphan linking on its own. Every replace a
worker makes is as atomic as the parent's, so killing any of them at any instant leaves
every venv whole, as DESIGN.md invariant 6 asks.

Only Linux forks here: elsewhere every scan runs in one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import os
import pickle
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, cast

from .errors import DedupeError
from .lockfds import LOCK_FDS_GUARD, close_other_locks

if TYPE_CHECKING:
    # Imported where children are forked: a run in one process (a clone, --jobs 1)
    # does not pay for multiprocessing's import.
    from multiprocessing.connection import Connection

T = TypeVar("T")
X = TypeVar("X")
R = TypeVar("R")
Emit = Callable[[Any], None]  # a part hands the parent one step's result

MAX_JOBS = 8  # each pass-2 worker reads every RECORD: more workers repeat that work
_PR_SET_PDEATHSIG = 1
_PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size
# Looked up now: a dlopen in a child forked from a threaded process is not safe.
_prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None


class WorkerError(DedupeError):
    """A worker process died or failed in a way its part could not report."""


def can_fork() -> bool:
    return sys.platform.startswith("linux")


def default_jobs() -> int:
    """The CPUs this process may use (at most MAX_JOBS); 1 where workers cannot fork."""
    if not can_fork():
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_JOBS))


def run_parts(
    work: Callable[[int, Emit], T],
    parts: int,
    on_step: Emit = lambda step: None,
    locks: frozenset[int] = frozenset(),
    *,
    in_children: bool = False,
) -> list[T]:
    """[work(0, emit), ..., work(parts - 1, emit)]: part 0 in this process, every other
    part in a forked child (with in_children, every part in a child: this process only
    collects, and its heap stays as compact as it was for the forks that come later).
    A part calls emit(step) after each step, and the parent calls on_step(step) as it
    arrives (a child's, when this process's part next emits or is done). When a part
    fails or dies, the others are killed (or, this process's, stopped at its next step)
    and the failure is raised here. The children keep the store lock descriptors locks
    and close any other."""
    if parts <= 1:
        return [work(part, on_step) for part in range(parts)]
    assert can_fork(), "workers fork on Linux only"
    children = _Children[T](on_step)

    def emit(step: Any) -> None:
        on_step(step)
        children.collect(0)

    # Pages stay shared with the children only while nobody writes them: the collector
    # would, in every child, on every object the parent holds.
    gc.freeze()
    try:
        for part in range(0 if in_children else 1, parts):
            _start(part, work, locks, children.running)
        if not in_children:
            # This process is a worker too: a child of its own would only wait here, and
            # each child costs the pages of the interpreter that it touches and so copies.
            children.results[0] = work(0, emit)
        while children.running:
            children.collect(None)
    finally:
        children.kill()
        gc.unfreeze()
    return [children.results[part] for part in range(parts)]


class _Children(Generic[T]):
    """The forked parts of one run_parts still running, and what each part returned."""

    def __init__(self, on_step: Emit) -> None:
        self.on_step = on_step
        self.running: dict[Connection, tuple[int, int]] = {}  # reader -> (part, pid)
        self.results: dict[int, T] = {}

    def collect(self, timeout: float | None) -> None:
        """Take what the children sent within timeout seconds; raise a part's failure."""
        from multiprocessing.connection import wait

        for ready in wait(list(self.running), timeout):
            reader = cast("Connection", ready)
            part, pid = self.running[reader]
            try:
                kind, value = reader.recv()
            except (EOFError, OSError):
                kind, value = "failed", _died(pid)
            if kind == "step":
                self.on_step(value)
                continue
            del self.running[reader]
            reader.close()
            _reap(pid)
            if kind != "done":
                raise value
            self.results[part] = value

    def kill(self) -> None:
        """Stop those still running, and wait until they are gone: they would go on
        linking for nothing (or for a run that is over), and they hold the store's lock
        with us."""
        for reader, (_part, pid) in self.running.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
            reader.close()


def run_each(
    do: Callable[[X], R],
    items: Sequence[X],
    jobs: int,
    on_result: Callable[[R], None] = lambda result: None,
    locks: frozenset[int] = frozenset(),
    *,
    in_children: bool = False,
) -> None:
    """do(item) for every item, the items dealt out between up to jobs parts (run_parts,
    with in_children); on_result(do(item)) in the parent as each arrives."""
    parts = min(jobs, len(items))

    def work(part: int, emit: Emit) -> None:
        for item in items[part::parts]:
            emit(do(item))

    run_parts(work, parts, on_result, locks, in_children=in_children)


def _start(
    part: int,
    work: Callable[[int, Emit], T],
    locks: frozenset[int],
    children: dict[Connection, tuple[int, int]],
) -> None:
    """Fork the child of one part and note it in children. SIGINT waits until the child
    is inside its try (so Ctrl-C cannot send it on through the parent's code) and the
    parent has noted it. Under LOCK_FDS_GUARD, no fork of a scan in another thread
    takes our pipe along, and ours takes no lock descriptor that is not in the set."""
    from multiprocessing.connection import Pipe

    parent = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with LOCK_FDS_GUARD:
            reader, writer = Pipe(duplex=False)
            with contextlib.suppress(OSError):
                # A child's steps wait in the pipe while the parent works on its own part:
                # room for a few (a walked venv's memo is a few hundred KiB at most).
                fcntl.fcntl(writer.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            with warnings.catch_warnings():
                # Python 3.12+ warns about fork() in a process with threads. The child
                # runs only our code, which takes no lock another thread could hold.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                _child(part, work, reader, writer, locks, parent, mask)
            children[reader] = (part, pid)
            writer.close()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _child(
    part: int,
    work: Callable[[int, Emit], T],
    reader: Connection,
    writer: Connection,
    locks: frozenset[int],
    parent: int,
    mask: set[int | signal.Signals],
) -> NoReturn:
    code = 1
    try:
        reader.close()
        close_other_locks(locks)
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == parent:  # else the parent died before prctl took effect
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            result = work(part, lambda step: writer.send(("step", step)))
            writer.send(("done", result))
            code = 0
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            writer.send(("failed", _reportable(exc)))
    finally:
        os._exit(code)  # no atexit handlers, no flush of the parent's buffers


def _reportable(exc: BaseException) -> BaseException:
    """The exception itself when the parent can handle it as from one process (a
    DedupeError, Ctrl-C); else a WorkerError with its traceback: a bug, named."""
    if isinstance(exc, (DedupeError, KeyboardInterrupt)):
        with contextlib.suppress(Exception):
            pickle.loads(pickle.dumps(exc))
            return exc
    trace = "".join(traceback.format_exception(exc)).rstrip()
    return WorkerError(f"a worker process failed: {exc!r}\n{trace}")


def _reap(pid: int) -> int:
    """Wait for the child; its wait status (0 when already reaped)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _died(pid: int) -> WorkerError:
    status = _reap(pid)
    if os.WIFSIGNALED(status):
        how = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        how = f"exited with status {os.waitstatus_to_exitcode(status)}"
    return WorkerError(
        f"a worker process {how} before it finished; every file is whole, rerun to finish"
    )
