#!/usr/bin/env python3
"""Benchmark `venv-dedupe clone` against making the same venv with pip, with uv (warm cache)
and with virtualenv-clone.

Usage:
    python benchmarks/bench_clone.py [--workdir DIR] [--wheelhouse DIR] [--json]

Run it with the interpreter that has venv-dedupe installed, and uv and virtualenv-clone
beside it (`pip install 'uv==0.13.*' virtualenv-clone`; a missing one is skipped).

What one run does
  1. Takes bench_scan.py's wheelhouse (downloaded once) and its largest profile, venv-000
     (every distribution of bench_scan.PACKAGES, about 10,000 files), and builds SRC from
     it with `python -m venv --without-pip` + real `pip --python SRC install` (pycs
     compiled by pip), once: it is cached under the workdir.
  2. On a fresh `cp -a` of SRC, in one run, each on the same filesystem, measures:
       clone (first)  `venv-dedupe clone --json --store STORE SRC DST`: SRC's files are
                      adopted into the empty store first (each proven once)
       clone (warm)   the same again to another DST: the store already holds SRC
       pip            `python -m venv --without-pip DST` + `pip --python DST install
                      --no-index` of SRC's `pip freeze` from the wheelhouse
       uv (warm)      `uv venv DST` + `uv pip install --offline` of the same pins, uv's
                      cache (on the same filesystem) warmed by one untimed install first,
                      uv's default link mode (hardlinks from its cache; no pycs)
       uv --compile   the same with --compile-bytecode (pycs, as pip and clone give)
       venv-clone     `virtualenv-clone SRC DST` (a full copy, its paths rewritten)
     wall time, CPU time (user + system of the command and its children, os.wait4), and
     the disk each adds: allocated bytes (st_blocks * 512, each inode once) of everything
     under DST whose inode is neither SRC's, the store's nor uv's cache's: the blocks DST
     does not share (folders included). For the clone, the store's growth beside it.
     And the disk as the filesystem counts it: its free bytes (after sync) before the
     command less after ("df"), which alone sees blocks shared by copy-on-write (a
     reflink is an inode of its own, counted whole by the first figure).
  3. Checks each DST imports its distributions (`python -c "import ..."`).
  Targets (issue #14): warm clone faster than uv warm, 20 times faster than pip, and under
  2% of SRC's allocated size added (by df, which counts every writer: keep the workdir's
  filesystem quiet). Run it with --workdir on an XFS mount to measure reflink clones
  (btrfs counts free space in whole chunks: its df figure is no measure of one clone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_reflink import free_bytes  # noqa: E402
from bench_scan import (  # noqa: E402
    CACHE,
    du_bytes,
    ensure_wheelhouse,
    hermetic_pip_env,
    log,
    pip_source,
    run_measured,
    sh,
    tool_command,
    uv_command,
    venv_specs,
)
from bench_scan import build_venv as pip_venv  # noqa: E402

PIP = [sys.executable, "-m", "pip"]
IMPORTS = "import requests, django, numpy, pandas, flask, pytest, black, pydantic, sqlalchemy"


def ensure_src(workdir: Path, wheelhouse: Path) -> Path:
    src = workdir / "clone-src"
    if (src / ".complete").exists():
        return src
    if src.exists():
        shutil.rmtree(src)
    log(f"building SRC with pip: {' '.join(venv_specs(0))}")
    pip_venv(src, venv_specs(0), wheelhouse)
    (src / ".complete").write_text("")
    return src


def inodes(*tops: Path) -> set[tuple[int, int]]:
    found = set()
    for top in tops:
        if not top.exists():
            continue
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                st = os.lstat(os.path.join(folder, name))
                found.add((st.st_dev, st.st_ino))
    return found


def added_bytes(dst: Path, shared: set[tuple[int, int]]) -> int:
    """Allocated bytes of DST's inodes (each once) that none of the shared trees holds."""
    seen, total = set(), 0
    for folder, dirs, files in os.walk(dst):
        for name in [".", *dirs, *files]:
            st = os.lstat(os.path.join(folder, name))
            ident = (st.st_dev, st.st_ino)
            if ident not in shared and ident not in seen:
                seen.add(ident)
                total += st.st_blocks * 512
    return total


def synced_free(path: Path) -> int:
    """The filesystem's free bytes once everything written is on it."""
    os.sync()
    return free_bytes(path)


def measured(steps: list[list[str]], disk: Path, env: dict[str, str] | None = None) -> dict:
    """Wall and CPU time of the steps, and the disk they took as the filesystem counts
    it (its free bytes before less after): the one figure that sees blocks shared by
    copy-on-write (a reflink is an inode of its own, which added_bytes counts whole)."""
    wall = cpu = 0.0
    free = synced_free(disk)
    for cmd in steps:
        if env is not None:
            old = dict(os.environ)
            os.environ.update(env)
        try:
            run = run_measured(cmd)
        finally:
            if env is not None:
                os.environ.clear()
                os.environ.update(old)
        if run.returncode != 0:
            raise SystemExit(f"{cmd!r} failed ({run.returncode}):\n{run.stderr[-2000:]}")
        wall += run.seconds
        cpu += run.cpu_seconds
    disk_bytes = free - synced_free(disk)
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "disk_bytes": disk_bytes,
        "stdout": run.stdout,
    }


def check_imports(dst: Path) -> None:
    sh([str(dst / "bin" / "python"), "-c", IMPORTS])


def measure(workdir: Path, wheelhouse: Path) -> dict:
    pristine = ensure_src(workdir, wheelhouse)
    rundir = workdir / "clone-run"
    if rundir.exists():
        shutil.rmtree(rundir)
    rundir.mkdir()
    src, store = rundir / "src", rundir / "store"
    sh(["cp", "-a", str(pristine), str(src)])
    (src / ".complete").unlink()
    reqs = rundir / "requirements.txt"
    reqs.write_text(
        subprocess.check_output([*PIP, "--python", str(src / "bin/python"), "freeze"], text=True)
    )
    sh(["sync"])
    src_bytes = du_bytes([src])[1]
    files = sum(len(f) for _, _, f in os.walk(src))
    report: dict = {"src": {"files": files, "allocated_bytes": src_bytes}, "tools": {}}
    tools = report["tools"]

    for name in ("clone (first)", "clone (warm)"):
        dst = rundir / name.replace(" (", "-").rstrip(")")
        before = added_bytes(store, inodes(src)) if store.exists() else 0
        r = measured(
            [[*tool_command(), "clone", "--json", "--store", str(store), str(src), str(dst)]],
            rundir,
        )
        result = json.loads(r.pop("stdout"))
        r["added_bytes"] = added_bytes(dst, inodes(src, store))
        r["reported_bytes_added"] = result["bytes_added"]
        # The store's own folders and files: its objects are SRC's inodes.
        r["store_growth_bytes"] = added_bytes(store, inodes(src)) - before
        r["files_linked"], r["pycs_linked"] = result["files_linked"], result["pycs_linked"]
        r["files_copied"] = sum(result["files_copied"].values())
        r["tool_seconds"] = round(result["seconds"], 3)
        check_imports(dst)
        tools[name] = r

    dst = rundir / "pip"
    source = pip_source(wheelhouse)
    r = measured(
        [
            [sys.executable, "-m", "venv", "--without-pip", str(dst)],
            [*PIP, "--python", str(dst / "bin/python"), "install", "-q", *source, "-r", str(reqs)],
        ],
        rundir,
        env=hermetic_pip_env(),
    )
    r.pop("stdout")
    r["added_bytes"] = added_bytes(dst, inodes(src, store))
    check_imports(dst)
    tools["pip"] = r

    uv = uv_command()
    if uv is None:
        tools["uv (warm)"] = {"skipped": "uv not found: pip install 'uv==0.13.*'"}
    else:
        cache = rundir / "uv-cache"
        env = {**hermetic_pip_env(), "UV_CACHE_DIR": str(cache), "UV_NO_CONFIG": "1"}
        uv_source = ["--offline", "--no-index", "--find-links", str(wheelhouse)]
        for name, extra in (("uv (warm)", []), ("uv --compile (warm)", ["--compile-bytecode"])):
            runs = {}
            for label in ("warm-up", "timed"):
                dst = rundir / f"uv{len(extra)}-{label}"
                steps = [
                    [*uv, "venv", "-q", "--python", sys.executable, str(dst)],
                    [*uv, "pip", "install", "-q", "--python", str(dst / "bin/python"),
                     *uv_source, *extra, "-r", str(reqs)],
                ]  # fmt: skip
                runs[label] = measured(steps, rundir, env=env)
            r = runs["timed"]
            r.pop("stdout")
            r["added_bytes"] = added_bytes(dst, inodes(src, store, cache))
            r["version"] = subprocess.check_output([*uv, "--version"], text=True).strip()
            check_imports(dst)
            tools[name] = r

    venv_clone = Path(sys.executable).with_name("virtualenv-clone")
    if not venv_clone.exists():
        tools["virtualenv-clone"] = {"skipped": "pip install virtualenv-clone"}
    else:
        dst = rundir / "virtualenv-clone"
        r = measured([[str(venv_clone), str(src), str(dst)]], rundir)
        r.pop("stdout")
        r["added_bytes"] = added_bytes(dst, inodes(src, store))
        check_imports(dst)
        tools["virtualenv-clone"] = r
    shutil.rmtree(rundir)
    return report


def render(report: dict) -> str:
    src = report["src"]
    out = [
        f"SRC: {src['files']:,} files, {src['allocated_bytes'] / 2**20:,.1f} MiB allocated",
        f"{'':<22}{'wall s':>9}{'CPU s':>9}{'added MiB':>11}{'% of SRC':>10}"
        f"{'df MiB':>9}{'% of SRC':>10}",
    ]
    for name, r in report["tools"].items():
        if "skipped" in r:
            out.append(f"{name:<22}skipped: {r['skipped']}")
            continue
        share = 100 * r["added_bytes"] / src["allocated_bytes"]
        disk = 100 * r["disk_bytes"] / src["allocated_bytes"]
        out.append(
            f"{name:<22}{r['seconds']:>9.2f}{r['cpu_seconds']:>9.2f}"
            f"{r['added_bytes'] / 2**20:>11.2f}{share:>9.2f}%"
            f"{r['disk_bytes'] / 2**20:>9.2f}{disk:>9.2f}%"
        )
    tools = report["tools"]
    warm = tools["clone (warm)"]
    out.append(
        f"clone (warm): {warm['files_linked']:,} files and {warm['pycs_linked']:,} pycs linked, "
        f"{warm['files_copied']:,} copied; its own figure {warm['tool_seconds']:.2f} s in the "
        f"tool, {warm['reported_bytes_added'] / 2**20:.2f} MiB added; the first clone grew "
        f"the store by {tools['clone (first)']['store_growth_bytes'] / 2**20:.2f} MiB"
    )
    targets = []
    if "seconds" in tools.get("uv (warm)", {}):
        targets.append(("faster than uv warm", warm["seconds"] < tools["uv (warm)"]["seconds"]))
    targets.append(("20x faster than pip", 20 * warm["seconds"] <= tools["pip"]["seconds"]))
    # A negative figure is another writer's (or a late free), not the clone's: no verdict.
    added = warm["disk_bytes"]
    targets.append(("< 2% of SRC added", 0 <= added < 0.02 * src["allocated_bytes"]))
    out.append("targets: " + "; ".join(f"{t}: {'met' if ok else 'MISSED'}" for t, ok in targets))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=CACHE / "work")
    parser.add_argument("--wheelhouse", type=Path, default=CACHE / "wheelhouse")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    ensure_wheelhouse(args.wheelhouse)
    started = time.perf_counter()
    report = measure(args.workdir, args.wheelhouse)
    report["seconds"] = round(time.perf_counter() - started, 1)
    text = render(report)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
