#!/usr/bin/env python3
"""Benchmark `venv-dedupe scan` on real pip-made venvs against jdupes and util-linux hardlink.

Usage:
    python benchmarks/bench_scan.py [--venvs K] [--copies N] [--packages NAME,...] [--workdir DIR]
                                    [--wheelhouse DIR] [--json] [--no-tool]

Run it with the interpreter that has venv-dedupe installed (the console script next to
sys.executable is used, else `venv-dedupe` on PATH, else `python -m dedupe`).

What one run does
  1. Downloads real wheels (PACKAGES at two pinned versions each, dependencies pinned by
     DEPENDENCY_PINS) for the running interpreter into the wheelhouse, once.
  2. Builds K venvs (`python -m venv --without-pip`, then real `pip --python VENV install`
     from the wheelhouse, .pyc compiled by pip) into a pristine tree that is cached under the
     workdir; every measurement below runs on a fresh `cp -a` copy of it.
     With --copies N (scale: N >= K, e.g. --venvs 3 --copies 1000) the measured tree is
     instead N venvs, each a `cp -a` of one of the K pip-made venvs taken round robin, made
     afresh from the cached pristine tree for each measurement (a cached N-venv tree would
     double the disk a run needs and save no time: every measurement needs a fresh copy).
     Copies add file instances, never content: the tree's distinct files are the K venvs'.
     With --packages the K venvs are made of those of PACKAGES only (small venvs: 1,000
     copies of the full mix would need about 230 GB).
  3. Measures, all in this run, with the page cache warm (dropping caches is not possible
     here, so every figure is a warm-cache figure):
       tree       apparent (du -sb) and allocated (du -sB1) size, regular and distinct files
       find       `find ROOT -type f -printf '%s\\n'`, best of 3: the metadata-walk baseline,
                  on the fresh tree and again on the deduplicated one (used for the ratio)
       dry run    `venv-dedupe scan --json --dry-run --store STORE ROOT`
       first run  the same without --dry-run: wall and CPU time (os.wait4: the child and
                  its workers), peak memory as the PSS of its process tree sampled every
                  PSS_SAMPLE_SECONDS (pages the forked workers share count once), and the
                  largest single peak RSS (VmHWM, sampled the same way),
                  bytes_reclaimed / apparent_bytes_reclaimed from its JSON, and the change of
                  allocated size of (tree + store) by du and by a walk of regular files
       rerun      the same again on the deduplicated tree, 3 times (must link nothing); the
                  first of them counts (the next cron run); then once with --full, which
                  walks every venv instead of taking unchanged ones from their memos
       jdupes     `jdupes -r -L -q ROOT` on another fresh copy: time, reclaimed (du)
       hardlink   util-linux `hardlink -q -t ROOT` on another fresh copy (-t: mtimes may
                  differ, as ours may; mode and owner must still match)
       uv         the same venv specs made by uv with --link-mode hardlink --compile-bytecode
     With --copies, also "base run": a first run on a fresh copy of the K pip-made venvs
     alone, whose peak PSS tells what the N copies add per file instance; hardlink and uv
     are skipped (hardlink would take about as long as jdupes again; uv would build N venvs).
  4. Removes its work copies; the wheelhouse and the pristine tree stay for the next run.

How to read it
  "reclaimed" is always allocated bytes (st_blocks * 512, each inode once), the figure `du`
  shows. The "Targets" block compares with the goals of DESIGN.md "Speed and memory":
    rerun / find <= RERUN_OVER_FIND_TARGET; first run / jdupes time < 1 and CPU
    <= FIRST_RUN_OVER_JDUPES_CPU_TARGET; reclaimed ours / jdupes >= 0.9;
    (peak PSS - PSS of an idle interpreter that imported the scan's modules) / distinct files
    <= MEMORY_PER_FILE_TARGET; with --copies, that figure of the base run, and
    (peak PSS of the N copies - peak PSS of the base run) / file instances the copies add
    <= MEMORY_PER_INSTANCE_TARGET (memory must not grow with copies but by a few bytes).
  The "Exactness checks" (exit code 1 when one fails, or when venv-dedupe fails): dry run ==
  real run, du change == bytes_reclaimed, the rerun links nothing, no errors, all venvs found.
  du's change of (tree + store) also counts the growth of the store's own directories and
  unlinked files (FORMAT, lock) and of the venvs' folders that a temp name made take a new
  block (the tool's folder_growth_bytes: ext4 never shrinks a folder), so du change + those
  must equal bytes_reclaimed; so must the change of allocated bytes of the tree's regular
  files (each inode once).
  With --json the table goes to stderr and one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
PIP = [sys.executable, "-m", "pip"]

# Top-level distributions: (version A = latest, version B = an older minor), both with
# wheels for CPython 3.11 on manylinux x86_64 (the newest releases on PyPI when this was
# written). Change a pin and the wheelhouse and the pristine tree are made anew.
PACKAGES: dict[str, tuple[str, str]] = {
    "requests": ("2.34.2", "2.32.5"),
    "django": ("5.2.19", "5.1.15"),
    "numpy": ("2.4.6", "2.3.5"),
    "pandas": ("3.1.1", "2.3.3"),
    "flask": ("3.1.3", "3.0.3"),
    "pytest": ("9.2.0", "8.4.2"),
    "black": ("26.10.1", "25.12.0"),
    "pydantic": ("2.14.3", "2.12.5"),
    "sqlalchemy": ("2.1.9", "2.0.58"),
}
# Their dependencies, one version each (used as pip constraints for download and install).
# pydantic-core is left out: each pydantic release pins its own exact pydantic-core.
# fmt: off
DEPENDENCY_PINS = [
    "annotated-types==0.8.0", "asgiref==3.13.0", "blinker==1.9.0", "certifi==2026.10.18",
    "charset-normalizer==3.5.2", "click==8.5.1", "greenlet==3.5.6", "idna==3.20",
    "iniconfig==2.3.1", "itsdangerous==2.2.0", "jinja2==3.1.6", "markupsafe==3.0.4",
    "mypy-extensions==1.2.0", "packaging==26.3", "pathspec==1.1.1", "platformdirs==4.14.7",
    "pluggy==1.7.0", "pygments==2.21.0", "python-dateutil==4.0.0", "pytokens==0.4.1",
    "pytz==2026.6", "sqlparse==0.6.1", "typing-extensions==4.16.0", "typing-inspection==0.4.5",
    "tzdata==2026.6", "urllib3==2.8.0", "werkzeug==3.1.9",
]
# fmt: on
P_INCLUDE = 0.75  # chance that a venv gets a given distribution at all
P_VERSION_A = 0.6  # chance that it gets version A rather than B
MEMORY_PER_FILE_TARGET = 500  # bytes per distinct file ("a few hundred at most")
MEMORY_PER_INSTANCE_TARGET = 8  # DESIGN.md: "a few bytes per file instance": one 64-bit word
RERUN_OVER_FIND_TARGET = 1.2  # DESIGN.md: a no-change rerun costs at most 1.2 find walks
FIRST_RUN_OVER_JDUPES_CPU_TARGET = 2.5  # DESIGN.md: at most 2.5 times jdupes' CPU


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


# --------------------------------------------------------------------------- measuring


class Run(NamedTuple):
    """One finished child: wall time, peak memory, exit code, output."""

    seconds: float
    cpu_seconds: float  # user + system, of the child and its reaped children
    maxrss: int | None  # sampled: the largest peak RSS (VmHWM) of one process of its tree
    returncode: int
    stdout: str
    stderr: str
    peak_pss: int | None = None  # sampled: the most its process tree held at once (PSS)


PSS_SAMPLE_SECONDS = 0.05


def proc_kib(path: str, field: str) -> int:
    """A 'Field:   N kB' line of a /proc file, in bytes."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def tree_memory(pid: int) -> tuple[int, int]:
    """(PSS of pid and its descendants, largest VmHWM among them). In the PSS, pages shared
    between them (a forked worker's copy-on-write pages) count once in all. VmHWM is read
    here because wait4's ru_maxrss is not the child's own: a child that the benchmark
    spawns starts with the benchmark's peak RSS, which grows with the tree it walks."""
    total, hwm, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += proc_kib(f"/proc/{p}/smaps_rollup", "Pss:")
            hwm = max(hwm, proc_kib(f"/proc/{p}/status", "VmHWM:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total, hwm


def run_measured(cmd: list[str], keep_stdout: bool = True) -> Run:
    """Run cmd and reap it with os.wait4 (CPU time of the child and its workers), sampling
    the memory of its process tree meanwhile (venv-dedupe forks workers)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out if keep_stdout else subprocess.DEVNULL, stderr=err)
        peak = [0, 0]  # PSS, RSS
        done = threading.Event()

        def sample() -> None:
            while not done.wait(PSS_SAMPLE_SECONDS):
                peak[:] = map(max, peak, tree_memory(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        text = [f.read().decode(errors="replace") for f in (out, err)]
        cpu = usage.ru_utime + usage.ru_stime
        return Run(seconds, cpu, peak[1] or None, proc.returncode, *text, peak[0] or None)


def find_walk(tree: Path) -> dict:
    """`find TREE -type f -printf '%s\\n' >/dev/null`, best of 3 (one warm-up run first)."""
    cmd = ["find", str(tree), "-type", "f", "-printf", "%s\\n"]
    run_measured(cmd, keep_stdout=False)
    best = min((run_measured(cmd, keep_stdout=False) for _ in range(3)), key=lambda r: r.seconds)
    return {"seconds": round(best.seconds, 4), "cpu_seconds": round(best.cpu_seconds, 3)}


def du_bytes(paths: list[Path]) -> tuple[int, int]:
    """(apparent, allocated) bytes of paths together, each inode counted once (du -c)."""
    paths = [str(p) for p in paths if p.exists()]
    if not paths:
        return 0, 0

    def total(flag: str) -> int:
        out = sh(["du", "-s", "-c", flag, *paths], capture_output=True, text=True).stdout
        return int(out.strip().splitlines()[-1].split()[0])

    return total("-b"), total("-B1")


def regular_file_blocks(paths: list[Path]) -> tuple[int, int]:
    """(number of regular-file inodes, their allocated bytes), each inode counted once."""
    seen: set[tuple[int, int]] = set()
    blocks = 0
    for top in paths:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                key = (st.st_dev, st.st_ino)
                if (st.st_mode & 0o170000) == 0o100000 and key not in seen:
                    seen.add(key)
                    blocks += st.st_blocks * 512
    return len(seen), blocks


def store_overhead(store: Path) -> int:
    """Allocated bytes the store costs beside shared objects: its directories and the regular
    files that no venv links to (st_nlink == 1: FORMAT, lock, unused objects)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirs, files in os.walk(store):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if (st.st_mode & 0o170000) != 0o100000 or st.st_nlink == 1:
                total += st.st_blocks * 512
    if store.is_dir():
        total += os.lstat(store).st_blocks * 512
    return total


def distinct_files(root: Path) -> tuple[int, int]:
    """(regular files, distinct (size, sha256) among them); only same-size files are hashed."""
    by_size: dict[int, list[str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if (st.st_mode & 0o170000) == 0o100000:
                by_size.setdefault(st.st_size, []).append(path)
    count = distinct = 0
    for paths in by_size.values():
        count += len(paths)
        if len(paths) == 1:
            distinct += 1
            continue
        digests = set()
        for path in paths:
            with open(path, "rb") as f:
                digests.add(
                    hashlib.file_digest(f, "sha256").digest()
                    if hasattr(hashlib, "file_digest")
                    else hashlib.sha256(f.read()).digest()
                )
        distinct += len(digests)
    return count, distinct


# --------------------------------------------------------------------------- preparing


def pins_key(n_venvs: int | None = None, packages: dict | None = None) -> str:
    pins = [packages or PACKAGES, DEPENDENCY_PINS, P_INCLUDE, P_VERSION_A, n_venvs]
    blob = json.dumps([*pins, sys.version, platform.machine()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def constraints_file(wheelhouse: Path) -> Path:
    path = wheelhouse / "constraints.txt"
    text = "\n".join(DEPENDENCY_PINS) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def ensure_wheelhouse(wheelhouse: Path) -> dict:
    """Download every pinned wheel (with dependencies) once; reuse it while pins match."""
    marker = wheelhouse / ".complete"
    key = pins_key()
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        info = json.loads(marker.read_text())
        info["cached"] = True
        return info
    wheelhouse.mkdir(parents=True, exist_ok=True)
    constraints = constraints_file(wheelhouse)
    t0 = time.perf_counter()
    for name, versions in PACKAGES.items():
        for version in versions:
            log(f"pip download {name}=={version}")
            dest = ["--dest", str(wheelhouse), "-c", str(constraints)]
            sh([*PIP, "download", "-q", "--only-binary=:all:", *dest, f"{name}=={version}"])
    info = {
        "key": key,
        "seconds": round(time.perf_counter() - t0, 1),
        "wheels": len(list(wheelhouse.glob("*.whl"))),
    }
    marker.write_text(json.dumps(info))
    info["cached"] = False
    return info


def venv_specs(index: int, packages: dict | None = None) -> list[str]:
    """Deterministic mix of distributions (of PACKAGES, or of the subset packages) for venv
    number index (str seeds are stable); never empty."""
    rng = random.Random(f"venv-{index}")
    specs = []
    for name, (a, b) in (packages or PACKAGES).items():
        include, use_a = rng.random() < P_INCLUDE, rng.random() < P_VERSION_A
        if include or index == 0:
            specs.append(f"{name}=={a if use_a else b}")
    return specs or venv_specs(0, packages)[:1]


def chosen_packages(names: str | None) -> dict | None:
    """The subset of PACKAGES that --packages names (comma-separated), None for all."""
    if not names:
        return None
    wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(PACKAGES))
    if unknown:
        raise argparse.ArgumentTypeError(f"not in PACKAGES: {', '.join(unknown)}")
    return {name: PACKAGES[name] for name in wanted}


def hermetic_pip_env() -> dict[str, str]:
    """Install only from the wheelhouse: no pip config files, no PIP_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def pip_source(wheelhouse: Path) -> list[str]:
    """pip's options that install from the local wheelhouse only, at the benchmark's pins."""
    return ["--no-index", "--find-links", str(wheelhouse), "-c", str(constraints_file(wheelhouse))]


def build_venv(venv: Path, specs: list[str], wheelhouse: Path) -> None:
    sh([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    source = pip_source(wheelhouse)
    target = ["--python", str(venv / "bin" / "python")]
    sh([*PIP, *target, "install", "-q", *source, *specs], env=hermetic_pip_env())


def ensure_pristine(
    workdir: Path, n_venvs: int, wheelhouse: Path, packages: dict | None
) -> tuple[Path, dict]:
    """Build the N venvs once into WORKDIR/pristine-KEY; later runs reuse it."""
    key = pins_key(n_venvs, packages)
    pristine, meta_path = workdir / f"pristine-{key}", workdir / f"pristine-{key}.json"
    if pristine.is_dir() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta["cached"] = True
        return pristine, meta
    partial = workdir / f"pristine-{key}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    t0 = time.perf_counter()
    jobs = os.cpu_count() or 2
    log(f"building {n_venvs} venvs with {jobs} parallel pip installs into {partial}")
    with ThreadPoolExecutor(jobs) as pool:
        futures = [
            pool.submit(build_venv, partial / f"venv-{i:03d}", venv_specs(i, packages), wheelhouse)
            for i in range(n_venvs)
        ]
        for i, fut in enumerate(futures):
            fut.result()
            log(f"  venv-{i:03d}: {' '.join(venv_specs(i, packages))}")
    seconds = time.perf_counter() - t0
    log("counting distinct files (hashing same-size files once)")
    regular, distinct = distinct_files(partial)
    partial.rename(pristine)
    meta = {
        "key": key,
        "venvs": n_venvs,
        "build_seconds": round(seconds, 1),
        "regular_files": regular,
        "distinct_files": distinct,
    }
    meta_path.write_text(json.dumps(meta))
    meta["cached"] = False
    return pristine, meta


def fresh_copy(pristine: Path, dest: Path) -> float:
    if dest.exists():
        sh(["rm", "-rf", str(dest)])
    t0 = time.perf_counter()
    sh(["cp", "-a", str(pristine), str(dest)])
    sh(["sync"])  # so writeback of the copy does not land inside a timed run
    return time.perf_counter() - t0


def base_venvs(pristine: Path) -> list[Path]:
    return sorted(p for p in pristine.iterdir() if p.is_dir())


def make_copies(pristine: Path, dest: Path, copies: int) -> float:
    """DEST/copy-NNNN for NNNN < copies, each a `cp -a` of the next pristine venv in turn."""
    if dest.exists():
        sh(["rm", "-rf", str(dest)])
    dest.mkdir()
    venvs = base_venvs(pristine)
    t0 = time.perf_counter()
    for index in range(copies):
        sh(["cp", "-a", str(venvs[index % len(venvs)]), str(dest / f"copy-{index:04d}")])
    sh(["sync"])
    return time.perf_counter() - t0


def fresh_tree(pristine: Path, dest: Path, copies: int) -> float:
    """The tree to measure: a copy of the pristine tree, or (copies > 0) that many venvs."""
    return make_copies(pristine, dest, copies) if copies else fresh_copy(pristine, dest)


def regular_files(top: Path) -> int:
    return sum(
        (os.lstat(os.path.join(dirpath, name)).st_mode & 0o170000) == 0o100000
        for dirpath, _dirs, files in os.walk(top)
        for name in files
    )


def tree_files(pristine: Path, build: dict, copies: int) -> dict:
    """Regular (instances) and distinct files of the measured tree, without hashing it."""
    files = {"regular_files": build["regular_files"], "distinct_files": build["distinct_files"]}
    if copies:
        per_venv = [regular_files(venv) for venv in base_venvs(pristine)]
        files["base_regular_files"] = files["regular_files"]
        files["regular_files"] = sum(per_venv[i % len(per_venv)] for i in range(copies))
    return files


# --------------------------------------------------------------------------- the measurements


def tool_command() -> list[str]:
    sibling = Path(sys.executable).parent / "venv-dedupe"
    if sibling.exists():
        return [str(sibling)]
    found = shutil.which("venv-dedupe")
    return [found] if found else [sys.executable, "-m", "dedupe"]


# A pip install compiles the tool's modules; an editable one leaves that to the first
# run, and with PYTHONDONTWRITEBYTECODE set (as on some CI hosts) to every run, which
# would time the compiler (about 0.1 s a run) instead of the scan.
COMPILE_TOOL = (
    "import compileall, os, dedupe\n"
    "compileall.compile_dir(os.path.dirname(dedupe.__file__), quiet=1)"
)


def compile_tool() -> None:
    subprocess.run([sys.executable, "-c", COMPILE_TOOL], check=True)


class ToolFailed(Exception):
    pass


def run_tool(tree: Path, store: Path, *options: str) -> tuple[Run, dict]:
    cmd = [*tool_command(), "scan", "--json", "--store", str(store), *options, str(tree)]
    run = run_measured(cmd)
    try:
        result = json.loads(run.stdout)
    except ValueError:
        result = None
    if run.returncode not in (0, 1) or not isinstance(result, dict):
        raise ToolFailed(
            f"command: {' '.join(cmd)}\nexit code: {run.returncode}\n"
            f"stdout (first 2000 chars):\n{run.stdout[:2000]}\n"
            f"stderr:\n{run.stderr}"
        )
    return run, result


def summary(run: Run, result: dict) -> dict:
    # fmt: off
    keys = [
        "files_scanned", "files_eligible", "files_linked", "files_already_shared",
        "files_stored", "files_unique", "files_linked_without_gain", "bytes_reclaimed",
        "apparent_bytes_reclaimed", "store_overhead_bytes", "folder_growth_bytes", "skipped",
        "pyc",
    ]
    # fmt: on
    out = {k: result.get(k) for k in keys}
    out.update(
        seconds=round(run.seconds, 3),
        cpu_seconds=round(run.cpu_seconds, 3),
        peak_rss_bytes=run.maxrss,
        peak_pss_bytes=run.peak_pss,
        exit_code=run.returncode,
        venvs_found=len(result.get("venvs", [])),
        skipped_venvs=len(result.get("skipped_venvs", [])),
        errors=len(result.get("errors", [])),
        warnings=len(result.get("warnings", [])),
    )
    if result.get("errors"):
        out["first_errors"] = result["errors"][:5]
    return out


# The baseline of the memory figures: an idle interpreter that imported what a scan runs
# (`import dedupe` alone loads next to nothing since it imports lazily; before that, it
# loaded all of it, and this figure is comparable with the ones measured then).
IDLE_SCAN_MODULES = (
    "import time, dedupe.scan, dedupe.maintenance\n"
    "try:\n    import dedupe.report.scan\nexcept ImportError:\n    import dedupe.report\n"
    "time.sleep(1)"
)


def measure_tool(rundir: Path, report: dict) -> None:
    """All venv-dedupe figures, on the fresh copy RUNDIR/tree, store RUNDIR/store."""
    tree, store = rundir / "tree", rundir / "store"

    base = run_measured([sys.executable, "-c", IDLE_SCAN_MODULES])
    report["import_dedupe_rss_bytes"] = base.maxrss
    report["import_dedupe_pss_bytes"] = base.peak_pss

    log("venv-dedupe --dry-run on the fresh copy")
    dry_run, dry = run_tool(tree, store, "--dry-run")
    report["dry_run"] = summary(dry_run, dry)

    du_before, overhead_before = du_bytes([tree, store]), store_overhead(store)
    files_before = regular_file_blocks([tree])
    log("venv-dedupe first run")
    first_run, first = run_tool(tree, store)
    du_after, overhead_after = du_bytes([tree, store]), store_overhead(store)
    files_after = regular_file_blocks([tree])
    first_summary = summary(first_run, first)
    first_summary.update(
        du_allocated_change=du_before[1] - du_after[1],
        du_apparent_change=du_before[0] - du_after[0],
        regular_file_allocated_change=files_before[1] - files_after[1],
        regular_file_inodes_before=files_before[0],
        regular_file_inodes_after=files_after[0],
        measured_store_overhead=overhead_after - overhead_before,
    )
    report["first_run"] = first_summary

    report["find_deduplicated_tree"] = find_walk(tree)
    log("venv-dedupe reruns (no change): three, then one with --full")
    reruns = [run_tool(tree, store) for _ in range(3)]
    # The first rerun is what the next cron run pays; the target is judged on it.
    rerun = summary(*reruns[0])
    rerun["venvs_unchanged"] = reruns[0][1].get("venvs_unchanged")
    rerun["seconds_of_3"] = [round(r[0].seconds, 3) for r in reruns]
    rerun["files_linked_max_of_3"] = max(r[1].get("files_linked", -1) for r in reruns)
    rerun["bytes_reclaimed_max_of_3"] = max(r[1].get("bytes_reclaimed", -1) for r in reruns)
    report["rerun"] = rerun
    report["rerun_full"] = summary(*run_tool(tree, store, "--full"))


def measure_base_run(pristine: Path, rundir: Path) -> dict:
    """A first run on the K pip-made venvs alone: what memory the copies start from."""
    tree, store = rundir / "base", rundir / "base-store"
    fresh_copy(pristine, tree)
    log("venv-dedupe first run on the base venvs alone")
    base = summary(*run_tool(tree, store))
    sh(["rm", "-rf", str(tree), str(store)])
    return base


def measure_external(name: str, cmd: list[str], pristine: Path, rundir: Path, copies: int) -> dict:
    tree = rundir / "tree"
    fresh_tree(pristine, tree, copies)
    before = du_bytes([tree])
    log(f"{name}: {' '.join(cmd)} TREE")
    run = run_measured([*cmd, str(tree)], keep_stdout=False)
    after = du_bytes([tree])
    sh(["rm", "-rf", str(tree)])
    if run.returncode != 0:
        log(f"{name} exited {run.returncode}: {run.stderr[-2000:]}")
    return {
        "command": " ".join(cmd) + " ROOT",
        "seconds": round(run.seconds, 3),
        "cpu_seconds": round(run.cpu_seconds, 3),
        "peak_rss_bytes": run.maxrss,
        "peak_pss_bytes": run.peak_pss,
        "exit_code": run.returncode,
        "bytes_reclaimed": before[1] - after[1],
        "apparent_bytes_reclaimed": before[0] - after[0],
    }


def uv_command() -> list[str] | None:
    """uv next to the running Python (pip install 'uv==0.13.*'), else on PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    return [found] if found else None


def measure_uv(n_venvs: int, packages: dict | None, wheelhouse: Path, rundir: Path) -> dict:
    """The same venvs as uv makes them with --link-mode hardlink --compile-bytecode, its
    cache on the same filesystem: what the venvs and the cache take together (each inode
    once, as du counts them), to compare with the tree after venv-dedupe."""
    uv = uv_command()
    if uv is None:
        return {"skipped": "uv not found: pip install 'uv==0.13.*'"}
    top = rundir / "uv"
    venvs, cache = top / "venvs", top / "cache"
    env = {**hermetic_pip_env(), "UV_CACHE_DIR": str(cache), "UV_NO_CONFIG": "1"}
    source = ["--offline", "--no-index", "--find-links", str(wheelhouse)]
    source += ["-c", str(constraints_file(wheelhouse))]
    log(f"uv: building {n_venvs} venvs with --link-mode hardlink --compile-bytecode")
    started = time.perf_counter()
    for index in range(n_venvs):
        venv = venvs / f"venv-{index:03d}"
        sh([*uv, "venv", "-q", "--python", sys.executable, str(venv)], env=env)
        sh(
            [
                *uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(venv / "bin" / "python"),
                *source,
                "--link-mode",
                "hardlink",
                "--compile-bytecode",
                *venv_specs(index, packages),
            ],
            env=env,
        )
    seconds = time.perf_counter() - started
    together = du_bytes([venvs, cache])
    venvs_only = du_bytes([venvs])
    sh(["rm", "-rf", str(top)])
    return {
        "version": tool_version([*uv, "--version"]),
        "build_seconds": round(seconds, 1),
        "allocated_bytes": together[1],
        "apparent_bytes": together[0],
        "venvs_only_allocated_bytes": venvs_only[1],
    }


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "not found"


# --------------------------------------------------------------------------- reporting


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.1f} MiB"


def ratio(a, b) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def copies_memory(report: dict, memory: int) -> dict:
    """With --copies: the base run's memory per distinct file, and what each file instance
    that the copies add costs on top of it (the growth with the number of copies)."""
    tree = report["tree"]
    base = report["base_run"]["peak_pss_bytes"] - report["import_dedupe_pss_bytes"]
    added = tree["regular_files"] - tree["base_regular_files"]
    return {
        "base_memory_bytes_over_interpreter": base,
        "base_memory_bytes_per_distinct_file": ratio(base, tree["distinct_files"]),
        "memory_bytes_per_added_file_instance": ratio(memory - base, added),
    }


def memory_targets(r: dict, met) -> dict:
    """Bytes per distinct file (of the base run with --copies) and per added file instance."""
    per_file = "base_memory_bytes_per_distinct_file"
    if per_file not in r:
        per_file = "memory_bytes_per_distinct_file"
    targets = {
        f"{per_file} <= {MEMORY_PER_FILE_TARGET}": met(
            per_file, lambda v: v <= MEMORY_PER_FILE_TARGET
        )
    }
    if "memory_bytes_per_added_file_instance" in r:
        name = "memory_bytes_per_added_file_instance"
        test = met(name, lambda v: v <= MEMORY_PER_INSTANCE_TARGET)
        targets[f"{name} <= {MEMORY_PER_INSTANCE_TARGET}"] = test
    return targets


def evaluate(report: dict) -> None:
    tree, first = report["tree"], report.get("first_run")
    jd, hl = report.get("jdupes"), report.get("hardlink")
    r: dict = {}
    targets: dict = {}
    checks: dict = {}
    if first:
        dry, rerun = report["dry_run"], report["rerun"]
        # Memory is the peak PSS of the whole process tree (the scan and its workers) over
        # that of an idle interpreter that imported dedupe.
        memory = first["peak_pss_bytes"] - report["import_dedupe_pss_bytes"]
        r = {
            "rerun_over_find": ratio(rerun["seconds"], report["find_deduplicated_tree"]["seconds"]),
            "rerun_full_over_find": ratio(
                report["rerun_full"]["seconds"], report["find_deduplicated_tree"]["seconds"]
            ),
            "first_run_over_jdupes_time": ratio(first["seconds"], jd and jd["seconds"]),
            "first_run_over_jdupes_cpu": ratio(first["cpu_seconds"], jd and jd["cpu_seconds"]),
            "first_run_over_hardlink_time": ratio(first["seconds"], hl and hl["seconds"]),
            "reclaimed_ours_over_jdupes": ratio(
                first["bytes_reclaimed"], jd and jd["bytes_reclaimed"]
            ),
            "reclaimed_ours_over_hardlink": ratio(
                first["bytes_reclaimed"], hl and hl["bytes_reclaimed"]
            ),
            "memory_bytes_over_interpreter": memory,
            "memory_bytes_per_distinct_file": ratio(memory, tree["distinct_files"]),
            "memory_bytes_per_regular_file": ratio(memory, tree["regular_files"]),
        }
        if report.get("base_run"):
            r.update(copies_memory(report, memory))

        def met(name: str, test) -> bool:
            return r[name] is not None and test(r[name])

        targets = {
            f"rerun_over_find <= {RERUN_OVER_FIND_TARGET}": met(
                "rerun_over_find", lambda v: v <= RERUN_OVER_FIND_TARGET
            ),
            "first_run_over_jdupes_time < 1": met("first_run_over_jdupes_time", lambda v: v < 1),
            f"first_run_over_jdupes_cpu <= {FIRST_RUN_OVER_JDUPES_CPU_TARGET}": met(
                "first_run_over_jdupes_cpu", lambda v: v <= FIRST_RUN_OVER_JDUPES_CPU_TARGET
            ),
            "reclaimed_ours_over_jdupes >= 0.9": met(
                "reclaimed_ours_over_jdupes", lambda v: v >= 0.9
            ),
            **memory_targets(r, met),
        }
        reclaimed = first["bytes_reclaimed"]
        du_total = (
            first["du_allocated_change"]
            + first["measured_store_overhead"]
            + (first["folder_growth_bytes"] or 0)
        )
        checks = {
            "dry_run bytes_reclaimed == real": dry["bytes_reclaimed"] == reclaimed,
            "dry_run apparent_bytes_reclaimed == real": dry["apparent_bytes_reclaimed"]
            == first["apparent_bytes_reclaimed"],
            "tree regular-file change == bytes_reclaimed": first["regular_file_allocated_change"]
            == reclaimed,
            "du change + store overhead + folder growth == bytes_reclaimed": du_total == reclaimed,
            "rerun files_linked == 0": rerun["files_linked_max_of_3"] == 0,
            "rerun bytes_reclaimed == 0": rerun["bytes_reclaimed_max_of_3"] == 0,
            "all venvs found": first["venvs_found"] == report["venvs"]
            and first["skipped_venvs"] == 0,
            "no errors, exit code 0": first["errors"] == rerun["errors"] == 0
            and first["exit_code"] == rerun["exit_code"] == 0,
        }
        if report.get("base_run"):
            base = report["base_run"]
            checks["base run: no errors, exit code 0"] = base["errors"] == base["exit_code"] == 0
    report["ratios"], report["targets"], report["checks"] = r, targets, checks


def render(report: dict) -> str:
    t = report["tree"]
    venvs = f"{report['venvs']} venvs"
    if "copies_of" in report:
        venvs += f" (cp -a copies of {report['copies_of']} pip-made ones, round robin)"
    lines = [
        "venv-dedupe scan benchmark (all figures with a WARM page cache: dropping caches is "
        "not possible here)",
        f"python {report['python']}, {report['pip']}, {report['cpus']} CPUs, {venvs}",
        f"wheelhouse: {report['wheelhouse']['wheels']} wheels, download "
        + ("cached" if report["wheelhouse"]["cached"] else "done")
        + f" (took {report['wheelhouse']['seconds']} s)",
        f"venv build: {'cached' if report['build']['cached'] else 'done'} "
        f"(took {report['build']['build_seconds']} s); cp -a of the measured tree "
        f"{report['copy_seconds']} s",
        f"tools: {report['tool_command']} | {report['jdupes_version']} | "
        f"{report['hardlink_version']}",
        f"load average (1 min) at start {report['loadavg_start']}, at end {report['loadavg_end']}"
        " (other work on the machine disturbs the timings)",
        "",
        "Tree",
        f"  regular files            {t['regular_files']:>14,}",
        f"  distinct (size, sha256)  {t['distinct_files']:>14,}",
        *(
            [f"  of the base venvs alone  {t['base_regular_files']:>14,}  regular files"]
            if "base_regular_files" in t
            else []
        ),
        f"  apparent (du -sb)        {t['apparent_bytes']:>14,}  {mib(t['apparent_bytes'])}",
        f"  allocated (du -sB1)      {t['allocated_bytes']:>14,}  {mib(t['allocated_bytes'])}",
        "",
        "reclaimed = allocated bytes (st_blocks * 512) freed; cpu = user + system of the child",
        f"{'Measurement':<40}{'wall s':>9}{'cpu s':>9}{'peak RSS':>12}{'peak PSS':>12}"
        f"{'reclaimed':>15}",
    ]

    def row(label: str, e: dict) -> None:
        wall, cpu, rss = e.get("seconds"), e.get("cpu_seconds"), e.get("peak_rss_bytes")
        pss = e.get("peak_pss_bytes")
        rec = "" if e.get("bytes_reclaimed") is None else f"{e['bytes_reclaimed']:,}"
        wall = "" if wall is None else f"{wall:.3f}"
        cpu = "" if cpu is None else f"{cpu:.2f}"
        lines.append(
            f"{label:<40}{wall:>9}{cpu:>9}{mib(rss) if rss else '':>12}"
            f"{mib(pss) if pss else '':>12}{rec:>15}"
        )

    row("find walk, fresh tree (best of 3)", report["find_fresh_tree"])
    if report.get("first_run"):
        row(
            "python, the scan's modules imported",
            {
                "peak_rss_bytes": report["import_dedupe_rss_bytes"],
                "peak_pss_bytes": report["import_dedupe_pss_bytes"],
            },
        )
        if report.get("base_run"):
            row(f"venv-dedupe first run, {report['copies_of']} base venvs", report["base_run"])
        row("venv-dedupe --dry-run", report["dry_run"])
        row("venv-dedupe first run", report["first_run"])
        row("find walk, deduplicated tree (best of 3)", report["find_deduplicated_tree"])
        row("venv-dedupe rerun (first of 3)", report["rerun"])
        row("venv-dedupe rerun --full (no memos)", report["rerun_full"])
    for name in ("jdupes", "hardlink"):
        if report.get(name):
            row(report[name]["command"], report[name])
    if report.get("baselines_skipped"):
        lines.append(f"(not measured: {report['baselines_skipped']})")

    if report.get("first_run"):
        first = report["first_run"]
        lines += [
            "",
            "First run accounting",
            f"  bytes_reclaimed (tool JSON)          {first['bytes_reclaimed']:>16,}",
            f"  apparent_bytes_reclaimed (tool JSON) {first['apparent_bytes_reclaimed']:>16,}",
            f"  du -sB1 change of tree + store       {first['du_allocated_change']:>16,}",
            f"  + growth of store overhead           {first['measured_store_overhead']:>16,}"
            f"   (store dirs, unlinked files; tool's store_overhead_bytes:"
            f" {first['store_overhead_bytes']})",
            f"  + growth of the venvs' folders       {first['folder_growth_bytes'] or 0:>16,}"
            "   (tool's folder_growth_bytes: temp names in full folders)",
            f"  du -sb change of tree + store        {first['du_apparent_change']:>16,}",
            f"  regular files of the tree, change    {first['regular_file_allocated_change']:>16,}",
            f"  files scanned/eligible/linked/stored "
            f"{first['files_scanned']}/{first['files_eligible']}/{first['files_linked']}/"
            f"{first['files_stored']}, unique {first['files_unique']}, "
            f"linked without gain {first['files_linked_without_gain']}",
            f"  pyc {json.dumps(first['pyc'], sort_keys=True)}",
            f"  skipped {json.dumps(first['skipped'], sort_keys=True)}",
            f"  venvs found {first['venvs_found']}, skipped venvs {first['skipped_venvs']}, "
            f"errors {first['errors']}, warnings {first['warnings']}, "
            f"exit code {first['exit_code']}",
            f"  rerun files_linked (max of 3) {report['rerun']['files_linked_max_of_3']}, "
            f"venvs taken from memos in the first rerun {report['rerun']['venvs_unchanged']}, "
            f"seconds of the 3 reruns {report['rerun']['seconds_of_3']}",
        ]
    if report.get("first_run"):
        first, allocated = report["first_run"], t["allocated_bytes"]
        after = allocated - first["du_allocated_change"]
        lines += [
            "",
            "Disk after (allocated bytes)",
            f"  pip venvs as built                   {allocated:>16,}",
            f"  after venv-dedupe (tree + store)     {after:>16,}"
            f"   reclaimed {first['bytes_reclaimed'] / allocated:.1%} of the tree,"
            f" pycs {first['pyc']['bytes_reclaimed'] / max(first['bytes_reclaimed'], 1):.1%}"
            " of that",
        ]
        uv = report.get("uv", {})
        if uv.get("allocated_bytes"):
            lines.append(
                f"  uv --link-mode hardlink --compile-bytecode (venvs + cache)"
                f" {uv['allocated_bytes']:,} ({uv['version']}; venvs alone"
                f" {uv['venvs_only_allocated_bytes']:,}; built in {uv['build_seconds']} s)"
            )
        elif uv.get("skipped"):
            lines.append(f"  uv: {uv['skipped']}")
    if report.get("ratios"):
        lines += ["", "Ratios"]
        lines += [f"  {k:<34} {v}" for k, v in report["ratios"].items()]
        lines += ["", "Targets (DESIGN.md, Speed and memory; timings are noisy, see load)"]
        lines += [f"  {'met   ' if ok else 'MISSED'}  {k}" for k, ok in report["targets"].items()]
        lines += ["", "Exactness checks (exit code 1 when one fails)"]
        lines += [f"  {'PASS' if ok else 'FAIL'}  {k}" for k, ok in report["checks"].items()]
    if report.get("tool_error"):
        lines += ["", "VENV-DEDUPE FAILED:", report["tool_error"]]
    if report.get("tool_skipped"):
        lines += ["", "venv-dedupe not measured (--no-tool)."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

SKIPPED_WITH_COPIES = (
    "util-linux hardlink and uv, skipped with --copies: hardlink would take about as long as"
    " jdupes again, uv would build every copy as a venv of its own"
)


def measure_tree_and_tool(pristine: Path, rundir: Path, args, report: dict) -> None:
    """The measured tree's size and find walk, then every venv-dedupe figure on it."""
    tree = rundir / "tree"
    report["copy_seconds"] = round(fresh_tree(pristine, tree, args.copies), 1)
    apparent, allocated = du_bytes([tree])
    report["tree"] = tree_files(pristine, report["build"], args.copies)
    report["tree"].update(apparent_bytes=apparent, allocated_bytes=allocated)
    report["find_fresh_tree"] = find_walk(tree)
    if args.no_tool:
        report["tool_skipped"] = True
    else:
        try:
            if args.copies:
                report["base_run"] = measure_base_run(pristine, rundir)
            measure_tool(rundir, report)
        except ToolFailed as exc:
            report["tool_error"] = str(exc)
            for key in ("dry_run", "first_run", "rerun", "base_run"):
                report.pop(key, None)
    sh(["rm", "-rf", str(tree), str(rundir / "store")])


def measure_baselines(pristine: Path, wheelhouse: Path, rundir: Path, args, report: dict) -> None:
    """jdupes, util-linux hardlink and uv, each on a tree of its own."""
    jdupes = ["jdupes", "-r", "-L", "-q"]
    report["jdupes"] = measure_external("jdupes", jdupes, pristine, rundir, args.copies)
    if args.copies:
        report["baselines_skipped"] = SKIPPED_WITH_COPIES
        report["uv"] = {"skipped": "skipped with --copies"}
        return
    hardlink = ["hardlink", "-q", "-t"]
    report["hardlink"] = measure_external("hardlink", hardlink, pristine, rundir, 0)
    report["uv"] = measure_uv(args.venvs, args.packages, wheelhouse, rundir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venvs", type=int, default=24, help="number of venvs (default 24)")
    ap.add_argument(
        "--copies",
        type=int,
        default=0,
        metavar="N",
        help="measure N venvs made by cp -a of the --venvs pip-made ones, round robin "
        "(scale; skips hardlink and uv)",
    )
    ap.add_argument(
        "--packages",
        type=chosen_packages,
        default=None,
        metavar="NAME,...",
        help="build the pip-made venvs from these of PACKAGES only (e.g. requests,flask,pytest "
        "for small venvs, so that --copies 1000 fits on the disk); default all",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=CACHE / "work",
        help="holds the cached pristine tree and the work copies (default benchmarks/.cache/work)",
    )
    ap.add_argument(
        "--wheelhouse",
        type=Path,
        default=CACHE / "wheelhouse",
        help="wheel cache (default benchmarks/.cache/wheelhouse)",
    )
    ap.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout (the table goes to stderr)",
    )
    ap.add_argument(
        "--no-tool",
        action="store_true",
        help="measure only the tree and the baselines (venv-dedupe not installed)",
    )
    args = ap.parse_args(argv)
    if args.copies and args.copies < args.venvs:
        ap.error("--copies must be at least --venvs (each base venv is copied at least once)")

    for prog in ("du", "find", "cp", "jdupes", "hardlink"):
        if not shutil.which(prog):
            ap.error(f"{prog} not found (apt-get install jdupes util-linux coreutils findutils)")
    workdir, wheelhouse = args.workdir.resolve(), args.wheelhouse.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    report: dict = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "venvs": args.copies or args.venvs,
        **({"copies_of": args.venvs} if args.copies else {}),
        "loadavg_start": round(os.getloadavg()[0], 2),
        "warm_cache": True,
        "pip": tool_version([sys.executable, "-m", "pip", "--version"]).split(" from ")[0],
        "jdupes_version": tool_version(["jdupes", "--version"]),
        "hardlink_version": tool_version(["hardlink", "--version"]),
        "tool_command": " ".join(tool_command()),
        "packages": args.packages or PACKAGES,
        "dependency_pins": DEPENDENCY_PINS,
    }
    report["wheelhouse"] = ensure_wheelhouse(wheelhouse)
    pristine, report["build"] = ensure_pristine(workdir, args.venvs, wheelhouse, args.packages)

    if not args.no_tool:
        compile_tool()
    rundir = workdir / "run"
    if rundir.exists():
        sh(["rm", "-rf", str(rundir)])  # left by an interrupted run
    rundir.mkdir()
    try:
        measure_tree_and_tool(pristine, rundir, args, report)
        measure_baselines(pristine, wheelhouse, rundir, args, report)
    finally:
        sh(["rm", "-rf", str(rundir)])

    report["loadavg_end"] = round(os.getloadavg()[0], 2)
    evaluate(report)
    print(render(report), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    failed = report.get("tool_error") or not all(report["checks"].values())  # not targets
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
