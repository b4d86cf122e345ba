"""Running venv-dedupe in a child process that dies (SIGKILL) at a chosen instant.

The child is ``sys.executable -c CHILD_SCRIPT CONFIG_JSON``. It sets
``dedupe.link.steps.fault_hook`` (and, on request, a line tracer or wrappers around
``dedupe.link`` functions), prints ``ready`` just before the operation starts, runs
``scan``, ``detach``, ``gc`` or a loop of scans (until the file ``stop`` exists), and on
success prints one JSON line: how many hook calls, traced lines and wrapped calls it saw,
and the problems reported. ``sleep`` ({stage: seconds}) makes each hook of that stage
sleep up to that long, to widen the windows a concurrent writer can hit; ``mark`` names a
file created at the first hook call, when the run holds the store's lock (with
``release``, the run then waits there until that file exists); ``between``
is a pause in seconds between the scans of a loop. Scans run in one process unless
``jobs`` says otherwise: hooks, counts and kills are those of one process.

Kill modes (``config["kill"]["mode"]``):

* ``hook``: at the Nth ``fault_hook`` call (of ``stage``, or of any stage; with
  ``in_child``, only calls in a forked worker count; with ``path``, only calls about
  that file);
* ``line``: before the Nth line executed in the given dedupe modules (``files``: paths
  in the package folder, glob patterns allowed; and functions; until the first call of
  the function ``until``), so every instant between two system calls of those modules
  can be chosen; the summary's ``lines`` counts the lines run in each file. With
  ``when`` ({"exists": path, "missing": path}; "{store}" in them is the config's store)
  only lines run while the one exists and the other does not count; with
  ``"action": "pause"`` the child does not die but writes where it is into the file
  ``paused`` and waits there until the file ``resume`` exists, so that another process
  can run at exactly that instant;
* ``call``: right before (or after) the Nth call of ``dedupe.link.<function>``;
* ``none``: no kill; with N = 0 the child only counts, for drawing N afterwards.

The parent can also kill it itself after a delay measured from ``ready``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import REPO_ROOT, TEMP_PREFIX

CHILD_SCRIPT = r"""
import glob, json, os, random, signal, sys, time

config = json.loads(sys.argv[1])
import dedupe
import dedupe.link as link
from dedupe import detach, gc, scan
from dedupe.link import steps

kill = config.get("kill") or {"mode": "none"}
main_pid = os.getpid()
mode, target = kill.get("mode", "none"), kill.get("n", 0)
hooks, calls, lines = {}, {}, {}
seen = 0
sleeps = config.get("sleep") or {}
rng = random.Random(config.get("seed", 0))


def die(where=""):
    if where:
        sys.stderr.write(f"killed at {where}\n")
        sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def hook(stage, at=None):
    global seen
    if not hooks and config.get("mark"):
        open(config["mark"], "x").close()  # the first hook: this run holds the lock
        deadline = time.monotonic() + 60
        while config.get("release") and not os.path.exists(config["release"]):
            assert time.monotonic() < deadline, "never released"
            time.sleep(0.005)
    hooks[stage] = hooks.get(stage, 0) + 1
    if (
        mode == "hook"
        and kill.get("stage") in (None, stage)
        and not (kill.get("in_child") and os.getpid() == main_pid)
        and kill.get("path") in (None, at.path if at is not None else None)
    ):
        seen += 1
        if seen == target:
            die()
    if stage in sleeps:
        time.sleep(rng.uniform(0, sleeps[stage]))


steps.fault_hook = hook


def wrap(name):
    original = getattr(link, name)

    def wrapper(*args, **kwargs):
        global seen
        calls[name] = calls.get(name, 0) + 1
        hit = False
        if mode == "call" and kill["function"] == name:
            seen += 1
            hit = seen == target
        if hit and not kill.get("after"):
            die()
        result = original(*args, **kwargs)
        if hit:
            die()
        return result

    setattr(link, name, wrapper)


for name in config.get("count_calls", []):
    wrap(name)

if mode == "line":
    folder = os.path.dirname(dedupe.__file__)
    files = {f for p in kill["files"] for f in glob.glob(os.path.join(folder, p))}
    assert files, f"no file matches {kill['files']}"
    functions = set(kill.get("functions") or ())
    until = kill.get("until")
    stopped = False

    # "{store}" and "{root}" in these paths stand for the config's own.
    when = {k: v.format(**config) for k, v in (kill.get("when") or {}).items()}

    def counts():
        # With "when", only the lines run while one path exists and another does not.
        return not when or (
            os.path.lexists(when["exists"]) and not os.path.lexists(when["missing"])
        )

    def local(frame, event, arg):
        global seen, stopped
        if event == "line" and not stopped and counts():
            seen += 1
            name = os.path.relpath(frame.f_code.co_filename, folder)
            lines[name] = lines.get(name, 0) + 1
            if seen == target:
                where = f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"
                if kill.get("action") != "pause":
                    die(where)
                # Pause here until the parent says "resume": another process runs meanwhile.
                stopped = True
                with open(kill["paused"], "x") as out:
                    out.write(where)
                deadline = time.monotonic() + 60
                while not os.path.exists(kill["resume"]) and time.monotonic() < deadline:
                    time.sleep(0.005)
        return local

    def tracer(frame, event, arg):
        global stopped
        code = frame.f_code
        if code.co_filename not in files or stopped:
            return None
        if code.co_name == until:
            stopped = True
            return None
        if not functions or code.co_name in functions:
            return local
        return None


def run():
    op = config["op"]
    wait = config.get("lock_timeout", 0.0)
    jobs = config.get("jobs", 1)
    if op == "scan":
        r = scan(
            [config["root"]],
            store=config["store"],
            lock_timeout=wait,
            jobs=jobs,
            share_pyc=config.get("share_pyc", True),
            link_mode=config.get("link_mode", "auto"),
        )
        errors = [[p.path, p.error] for p in r.errors]
        return {"errors": errors, "linked": r.files_linked, "stored": r.files_stored}
    if op == "scan-loop":
        runs = linked = 0
        errors = []
        while not os.path.exists(config["stop"]):
            r = scan([config["root"]], store=config["store"], lock_timeout=wait, jobs=jobs)
            runs += 1
            linked += r.files_linked + r.files_stored
            errors += [[p.path, p.error] for p in r.errors]
            time.sleep(config.get("between", 0))
        return {"errors": errors, "runs": runs, "linked": linked}
    if op == "detach":
        r = detach(config["venvs"], store=config["store"], lock_timeout=wait)
        return {"errors": [[p.path, p.error] for p in r.errors], "detached": r.files_detached}
    if op == "gc":
        r = gc(config["store"], lock_timeout=wait)
        return {"errors": [[p.path, p.error] for p in r.errors], "removed": r.files_removed}
    raise SystemExit(f"unknown op {op!r}")


print("ready", flush=True)
started = time.monotonic()
if mode == "line":
    sys.settrace(tracer)
summary = run()
sys.settrace(None)
summary.update(
    seen=seen, hooks=hooks, calls=calls, lines=lines, elapsed=time.monotonic() - started
)
print(json.dumps(summary), flush=True)
"""


def child_env(pycache: Path | None = None) -> dict[str, str]:
    """The environment of a child: dedupe importable; with pycache, the children's own
    bytecode cached there (never in the repo), so that each does not compile dedupe anew."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def start_child(config: dict[str, Any], pycache: Path | None = None) -> subprocess.Popen[str]:
    """Start the child; it prints ``ready`` on its first line once dedupe is imported."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=child_env(pycache),
    )


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    summary: dict[str, Any] | None  # the JSON line of a child that finished
    stderr: str
    elapsed: float = 0.0  # seconds from "ready" to the child's end

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def where(self) -> str:
        """Where a line kill struck ("store/opening.py:301 in open_store"), or ""."""
        for line in self.stderr.splitlines():
            if line.startswith("killed at "):
                return line.removeprefix("killed at ")
        return ""


def wait_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    line = first_line(child.stdout.fileno())
    if line.strip() != "ready":
        child.kill()
        _, err = child.communicate()
        raise AssertionError(f"the child did not start: {line!r}\n{err}")


def first_line(fd: int) -> str:
    """The first line on the pipe fd, read a byte at a time: a readline() of the file
    object would buffer what follows it, out of reach of communicate(), which reads the
    descriptor (a child that ended at once lost its summary line so)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line.decode()


def finish(child: subprocess.Popen[str], timeout: float = 120, *, check: bool = True) -> ChildRun:
    """Wait for the child; with check, fail unless it ended well or by SIGKILL."""
    out, err = child.communicate(timeout=timeout)
    summary = None
    for line in out.splitlines():
        if line.startswith("{"):
            summary = json.loads(line)
    if check and child.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"the child failed with exit {child.returncode}:\n{out}\n{err}")
    return ChildRun(child.returncode, summary, err)


def run_child(
    config: dict[str, Any], *, kill_after: float | None = None, pycache: Path | None = None
) -> ChildRun:
    """Run the child to its end; with kill_after, SIGKILL it that many seconds after
    it said ``ready`` (unless it finished first)."""
    child = start_child(config, pycache)
    wait_ready(child)
    started = time.monotonic()
    if kill_after is not None:
        try:
            child.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
    run = finish(child)
    return dataclasses.replace(run, elapsed=time.monotonic() - started)


def leftovers(*tops: Path) -> list[Path]:
    """Every ``.venv-dedupe-tmp-*`` name under tops (files or anything else)."""
    found = []
    for top in tops:
        for folder, dirs, files in os.walk(top):
            found += [Path(folder) / n for n in [*dirs, *files] if n.startswith(TEMP_PREFIX)]
    return found


def without_leftovers(states: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in states.items() if not os.path.basename(k).startswith(TEMP_PREFIX)}


def copy_tree(source: Path, destination: Path) -> None:
    """``cp -a``: modes, owners, times and hardlinks between the copied files kept."""
    subprocess.run(["cp", "-a", str(source), str(destination)], check=True)


def sharing(top: Path, *, pycs: bool = False) -> set[frozenset[str]]:
    """The groups of paths under top that are names of one inode (groups of two or more;
    without pycs unless asked): what a scan shares, independent of inode numbers."""
    groups: dict[tuple[int, int], set[str]] = {}
    for folder, _dirs, files in os.walk(top):
        for name in files:
            if name.startswith(TEMP_PREFIX) or (name.endswith(".pyc") and not pycs):
                continue
            path = os.path.join(folder, name)
            st = os.lstat(path)
            groups.setdefault((st.st_dev, st.st_ino), set()).add(os.path.relpath(path, top))
    return {frozenset(g) for g in groups.values() if len(g) > 1}
