#!/usr/bin/env python3
"""Benchmark `venv-dedupe scan --link-mode reflink` on a loop-mounted XFS image (issue #13).

Usage (as root: it makes and loop-mounts a file system image):
    python benchmarks/bench_reflink.py [--venvs K] [--workdir DIR] [--wheelhouse DIR]
                                       [--image-dir DIR] [--results DIR] [--json]

It builds (or reuses) the pristine tree of K pip-made venvs of bench_scan.py (default 24;
`--venvs 8` for a quick run) outside the image, makes a sparse image file in --image-dir
(default: the system's temp folder) sized IMAGE_OVER_TREE times the tree's allocated
size, formats it `mkfs.xfs -q -m reflink=1`, loop-mounts it on a temp folder, and in one
run measures, each on a fresh `cp -a` copy of the pristine tree inside the image (the
previous copy and the store removed first; the pristine tree is on another file system,
so cp cannot clone it):
  reflink dry  `venv-dedupe scan --json --dry-run --link-mode reflink --store STORE ROOT`
  reflink      the same without --dry-run, on the same copy (dry must equal real)
  rerun        the same again on the deduplicated copy (no change: must link nothing),
               against `find ROOT -type f -printf '%s\\n'` (best of 3) on that copy
  hardlink     `venv-dedupe scan --json --link-mode hardlink --store STORE ROOT`
  duperemove   `duperemove -dr -q --hashfile=FILE ROOT`, FILE in a temp folder outside the
               image (keeps its memory small; it does not count in the image's free space)
For each: wall and CPU time (user + system of the child and all it waited for, os.wait4)
and the bytes reclaimed as the file system sees them: free space (statvfs f_bfree *
f_frsize) after minus before. Each reading is taken after a `sync` and once free space
has stayed the same for SETTLE_STABLE_SECONDS (XFS frees blocks and copy-on-write
reservations lazily), at most SETTLE_MAX_SECONDS; the report says how long each waited
and how far free space moved meanwhile. For venv-dedupe also its own JSON figures
(bytes_reclaimed, store_overhead_bytes, pyc.bytes_reclaimed, files linked).
After the reflink run, every regular file of the copy is checked against the pristine
tree: same inode, mode, owner, mtime and bytes (a .pyc may be replaced by an equivalent
one, as DESIGN.md allows: it keeps its 16-byte header and must load with marshal).
The image is unmounted and removed at the end, also on failure or Ctrl-C.

Targets (issue #13): reflink reclaims >= 95% of what hardlink reclaims, and more than
duperemove (statvfs deltas); also the share of hardlink mode's pyc saving that reflink
mode reaches, and the no-change rerun over the find walk (DESIGN.md: <= 1.2).
The text table goes to stdout (stderr with --json, which prints the JSON object on
stdout); both are also written to --results (default benchmarks/results/, not tracked).
Exit code 1 when an exactness check fails or venv-dedupe fails (not for missed targets).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import marshal
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_scan import (
    CACHE,
    HERE,
    ToolFailed,
    compile_tool,
    du_bytes,
    ensure_pristine,
    ensure_wheelhouse,
    find_walk,
    fresh_copy,
    log,
    mib,
    ratio,
    run_measured,
    run_tool,
    sh,
    summary,
    tool_command,
    tool_version,
)

IMAGE_OVER_TREE = 2.5  # the image holds the tree 2.5 times (one copy and a store at a time)
IMAGE_MIN_BYTES = 2 * 2**30
SETTLE_STABLE_SECONDS = 3.0  # free space must stay the same this long after a sync
SETTLE_MAX_SECONDS = 60.0  # ... but the benchmark waits no longer than this
SETTLE_POLL_SECONDS = 0.5
REFLINK_OVER_HARDLINK_TARGET = 0.95  # issue #13
RERUN_OVER_FIND_TARGET = 1.2  # DESIGN.md
PYC_HEADER = 16
DUPEREMOVE = ["duperemove", "-dr", "-q"]


# --------------------------------------------------------------------------- the image


def free_bytes(mount: Path) -> int:
    st = os.statvfs(mount)
    return st.f_bfree * st.f_frsize


def settled_free(mount: Path) -> dict:
    """Free bytes after a sync, once they stayed the same for SETTLE_STABLE_SECONDS."""
    os.sync()
    t0 = time.monotonic()
    first = last = free_bytes(mount)
    stable_since = t0
    while True:
        time.sleep(SETTLE_POLL_SECONDS)
        now, free = time.monotonic(), free_bytes(mount)
        if free != last:
            last, stable_since = free, now
            os.sync()
        elif now - stable_since >= SETTLE_STABLE_SECONDS:
            break
        if now - t0 >= SETTLE_MAX_SECONDS:
            break
    waited = time.monotonic() - t0
    return {
        "free_bytes": last,
        "waited_seconds": round(waited, 1),
        "moved_bytes": last - first,  # how far free space moved after the sync
        "stable": time.monotonic() - stable_since >= SETTLE_STABLE_SECONDS,
    }


class Image:
    """A sparse XFS image with reflink=1, loop-mounted on a temp folder; close() undoes it."""

    def __init__(self, folder: Path, size: int) -> None:
        self.file = Path(tempfile.mkstemp(prefix="bench-reflink-", suffix=".img", dir=folder)[1])
        self.mount: Path | None = None
        try:
            os.truncate(self.file, size)
            sh(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(self.file)])
            self.mount = Path(tempfile.mkdtemp(prefix="bench-reflink-mnt-"))
            sh(["mount", "-o", "loop", str(self.file), str(self.mount)])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            if self.mount is not None:
                os.sync()
                result = subprocess.run(["umount", str(self.mount)], check=False)
                if result.returncode != 0:  # busy (a child still running): lazy unmount
                    subprocess.run(["umount", "-l", str(self.mount)], check=False)
                self.mount.rmdir()
                self.mount = None
        finally:
            self.file.unlink(missing_ok=True)


# --------------------------------------------------------------------------- checks


def snapshot(tree: Path) -> dict[str, tuple[int, int, int, int, int, int]]:
    """Every regular file: (inode, mode, uid, gid, mtime_ns, size)."""
    out = {}
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if (st.st_mode & 0o170000) == 0o100000:
                key = os.path.relpath(path, tree)
                out[key] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size)
    return out


def same_bytes(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def check_tree(pristine: Path, tree: Path, before: dict) -> dict:
    """The reflink run's promise: each file keeps its inode, owner, mode, mtime and bytes;
    a pyc may differ only after its header and must still load."""
    after = snapshot(tree)
    problems: list[str] = []
    counts = {"files": len(after), "pycs_replaced": 0, "pycs_identical": 0}
    if set(after) != set(before):
        problems.append(f"file set changed: {sorted(set(after) ^ set(before))[:5]}")
    for rel, meta in after.items():
        old = before.get(rel)
        if old is None:
            continue
        is_pyc = rel.endswith(".pyc")
        # A replaced pyc is a new inode with the old one's mode, owner and times.
        if meta[1:5] != old[1:5] or (meta[0] != old[0] and not is_pyc):
            problems.append(f"{rel}: inode/mode/owner/mtime changed {old} -> {meta}")
            continue
        a, b = os.path.join(pristine, rel), os.path.join(tree, rel)
        if same_bytes(a, b):
            counts["pycs_identical"] += is_pyc
            continue
        if not is_pyc:
            problems.append(f"{rel}: bytes changed")
            continue
        problem = pyc_problem(Path(a), Path(b))
        if problem:
            problems.append(f"{rel}: {problem}")
        else:
            counts["pycs_replaced"] += 1
    return {**counts, "problems": len(problems), "first_problems": problems[:10]}


def pyc_problem(old: Path, new: Path) -> str | None:
    """Why the replaced pyc new is not equivalent to old (None when it is): it must hold
    the same code (code objects compare without their source path) and either old's header
    or, shared as a checked hash-based pyc, the hash of the source beside it."""
    old_pyc, new_pyc = old.read_bytes(), new.read_bytes()
    try:
        same_code = marshal.loads(old_pyc[PYC_HEADER:]) == marshal.loads(new_pyc[PYC_HEADER:])
    except Exception:  # any failure to load is the finding
        return "it does not load"
    if not same_code:
        return "its code changed"
    if new_pyc[:PYC_HEADER] == old_pyc[:PYC_HEADER]:
        return None
    source = new.parent.parent / (new.name.split(".", 1)[0] + ".py")
    checked = new_pyc[4:8] == (3).to_bytes(4, "little")
    hashed = checked and new_pyc[8:16] == importlib.util.source_hash(source.read_bytes())
    if new_pyc[:4] != old_pyc[:4] or not hashed:
        return "its header is neither its own nor the checked hash of its source"
    return None


def pyc_blocks(pristine: Path, block: int) -> dict:
    """What reflink sharing cannot reach in the pycs: pycs of one block or less, and the
    first block of each longer one (its header: the source's own mtime and size)."""
    small = small_bytes = large = 0
    for dirpath, _dirs, files in os.walk(pristine):
        for name in files:
            if name.endswith(".pyc"):
                st = os.lstat(os.path.join(dirpath, name))
                if st.st_size <= block:
                    small += 1
                    small_bytes += st.st_blocks * 512
                else:
                    large += 1
    return {
        "block_size": block,
        "pycs_of_one_block": small,
        "pycs_of_one_block_allocated_bytes": small_bytes,
        "pycs_longer": large,
        "first_blocks_bytes": large * block,
    }


# --------------------------------------------------------------------------- measuring


def measure(cmd: list[str], mount: Path, before: dict) -> tuple:
    """Run cmd (measured), then read free space once settled: (Run, after, reclaimed)."""
    run = run_measured(cmd)
    after = settled_free(mount)
    return run, after, after["free_bytes"] - before["free_bytes"]


def tool_figures(run, result: dict, before: dict, after: dict) -> dict:
    out = summary(run, result)
    out.update(
        statvfs_reclaimed=after["free_bytes"] - before["free_bytes"],
        settle_before=before,
        settle_after=after,
        venvs_unchanged=result.get("venvs_unchanged"),
        link_modes=sorted({s.get("link_mode") for s in result.get("stores", [])} - {None}),
    )
    return out


def run_tool_on(tree: Path, store: Path, mount: Path, before: dict, *options: str) -> dict:
    run, result = run_tool(tree, store, *options)
    after = settled_free(mount)
    return tool_figures(run, result, before, after)


def fresh(pristine: Path, tree: Path, store: Path, mount: Path) -> dict:
    """Remove the last copy and store, settle, copy the pristine tree afresh, settle."""
    sh(["rm", "-rf", str(tree), str(store)])
    removed = settled_free(mount)
    seconds = fresh_copy(pristine, tree)
    before = settled_free(mount)
    before["copy_seconds"] = round(seconds, 1)
    before["settle_after_remove"] = removed
    return before


def measure_all(pristine: Path, mount: Path, report: dict) -> None:
    tree, store = mount / "tree", mount / "store"
    mode = ["--link-mode", "reflink"]

    log("reflink: fresh copy, dry run, real run")
    before = fresh(pristine, tree, store, mount)
    report["copy_seconds"] = before["copy_seconds"]
    apparent, allocated = du_bytes([tree])
    report["tree_in_image"] = {"apparent_bytes": apparent, "allocated_bytes": allocated}
    meta_before = snapshot(tree)
    report["reflink_dry"] = run_tool_on(tree, store, mount, before, "--dry-run", *mode)
    before = settled_free(mount)
    report["reflink"] = run_tool_on(tree, store, mount, before, *mode)
    report["find_deduplicated_tree"] = find_walk(tree)
    log("reflink: no-change rerun")
    before = settled_free(mount)
    report["reflink_rerun"] = run_tool_on(tree, store, mount, before, *mode)
    log("reflink: checking every file against the pristine tree")
    report["reflink_tree_check"] = check_tree(pristine, tree, meta_before)

    log("hardlink: fresh copy, real run")
    before = fresh(pristine, tree, store, mount)
    report["hardlink"] = run_tool_on(tree, store, mount, before, "--link-mode", "hardlink")

    log("duperemove: fresh copy")
    before = fresh(pristine, tree, store, mount)
    with tempfile.TemporaryDirectory(prefix="bench-reflink-dr-") as tmp:
        cmd = [*DUPEREMOVE, f"--hashfile={Path(tmp) / 'hashes'}", str(tree)]
        run, after, reclaimed = measure(cmd, mount, before)
    if run.returncode != 0:
        log(f"duperemove exited {run.returncode}: {run.stderr[-2000:]}")
    report["duperemove"] = {
        "command": " ".join([*DUPEREMOVE, "--hashfile=TMP/hashes", "ROOT"]),
        "seconds": round(run.seconds, 3),
        "cpu_seconds": round(run.cpu_seconds, 3),
        "peak_rss_bytes": run.maxrss,
        "exit_code": run.returncode,
        "statvfs_reclaimed": reclaimed,
        "settle_before": before,
        "settle_after": after,
        "summary": run.stdout.strip().splitlines()[-3:],
    }
    sh(["rm", "-rf", str(tree), str(store)])


# --------------------------------------------------------------------------- reporting

PYC_GAP_TEXT = (
    "How reflink mode shares pycs: each venv's sources keep their own mtime, so timestamp\n"
    "  pycs differ in their header. Each group's object is a checked hash-based pyc (its\n"
    "  header holds the source's hash, valid for every copy) and each pyc becomes a whole\n"
    "  clone of it. Only for interpreters whose source hash venv-dedupe cannot compute\n"
    "  (SipHash-2-4 up to 3.10 when it runs on 3.11+) does each pyc keep its first block\n"
    "  (its own header) private, and pycs of one block are not shared; the figures below\n"
    "  are what that method would leave private in this tree."
)


def evaluate(report: dict) -> None:
    rl, hl, dr = report["reflink"], report["hardlink"], report["duperemove"]
    dry, rerun = report["reflink_dry"], report["reflink_rerun"]
    hl_pyc = (hl.get("pyc") or {}).get("bytes_reclaimed")
    rl_pyc = (rl.get("pyc") or {}).get("bytes_reclaimed")
    r = {
        "reflink_over_hardlink_statvfs": ratio(rl["statvfs_reclaimed"], hl["statvfs_reclaimed"]),
        "reflink_over_duperemove_statvfs": ratio(rl["statvfs_reclaimed"], dr["statvfs_reclaimed"]),
        "reflink_pyc_over_hardlink_pyc": ratio(rl_pyc, hl_pyc),
        "reflink_over_hardlink_tool": ratio(rl["bytes_reclaimed"], hl["bytes_reclaimed"]),
        "rerun_over_find": ratio(rerun["seconds"], report["find_deduplicated_tree"]["seconds"]),
        "reflink_over_hardlink_time": ratio(rl["seconds"], hl["seconds"]),
        "reflink_over_duperemove_time": ratio(rl["seconds"], dr["seconds"]),
        "reflink_over_duperemove_cpu": ratio(rl["cpu_seconds"], dr["cpu_seconds"]),
    }
    targets = {
        f"reflink statvfs reclaimed >= {REFLINK_OVER_HARDLINK_TARGET:.0%} of hardlink's": (
            r["reflink_over_hardlink_statvfs"] is not None
            and r["reflink_over_hardlink_statvfs"] >= REFLINK_OVER_HARDLINK_TARGET
        ),
        "reflink statvfs reclaimed > duperemove's": rl["statvfs_reclaimed"]
        > dr["statvfs_reclaimed"],
        f"reflink no-change rerun / find <= {RERUN_OVER_FIND_TARGET}": (
            r["rerun_over_find"] is not None and r["rerun_over_find"] <= RERUN_OVER_FIND_TARGET
        ),
    }
    check = report["reflink_tree_check"]
    settles = [
        e[k]
        for e in (dry, rl, rerun, hl, dr)
        for k in ("settle_before", "settle_after")
        if isinstance(e.get(k), dict)
    ]
    checks = {
        "reflink dry run bytes_reclaimed == real": dry["bytes_reclaimed"] == rl["bytes_reclaimed"],
        "reflink dry run apparent_bytes_reclaimed == real": dry["apparent_bytes_reclaimed"]
        == rl["apparent_bytes_reclaimed"],
        "reflink dry run pyc.bytes_reclaimed == real": (dry.get("pyc") or {}).get("bytes_reclaimed")
        == rl_pyc,
        "reflink dry run store_overhead_bytes == real": dry["store_overhead_bytes"]
        == rl["store_overhead_bytes"],
        "reflink store link mode is reflink": rl["link_modes"] == ["reflink"],
        "hardlink store link mode is hardlink": hl["link_modes"] == ["hardlink"],
        "reflink: every file kept inode, owner, mode, mtime, bytes (pycs: valid)": check["problems"]
        == 0,
        "rerun links nothing": rerun["files_linked"] == 0 and rerun["bytes_reclaimed"] == 0,
        "no errors, exit code 0 (dry, reflink, rerun, hardlink)": all(
            e["errors"] == 0 and e["exit_code"] == 0 for e in (dry, rl, rerun, hl)
        ),
        "all venvs found (reflink, hardlink)": all(
            e["venvs_found"] == report["venvs"] and e["skipped_venvs"] == 0 for e in (rl, hl)
        ),
        "duperemove exit code 0": dr["exit_code"] == 0,
        "free space settled after every sync": all(s["stable"] for s in settles),
    }
    report["ratios"], report["targets"], report["checks"] = r, targets, checks
    report["settle_total_seconds"] = round(sum(s["waited_seconds"] for s in settles), 1)
    report["settle_max_moved_bytes"] = max((abs(s["moved_bytes"]) for s in settles), default=0)


def render(report: dict) -> str:
    t, img = report["tree"], report["image"]
    lines = [
        "venv-dedupe reflink benchmark (issue #13), warm page cache",
        f"python {report['python']}, {report['cpus']} CPUs, kernel {report['kernel']}, "
        f"{report['venvs']} venvs",
        f"tools: {report['tool_command']} | {report['duperemove_version']} | "
        f"{report['mkfs_version']}",
        f"image: sparse {mib(img['size_bytes'])}, mkfs.xfs -q -m reflink=1, mount -o loop "
        f"(block {img['block_size']} B); cp -a of the tree into it {report['copy_seconds']} s",
        f"load average (1 min) at start {report['loadavg_start']}, at end "
        f"{report['loadavg_end']} (other work on the machine disturbs the timings)",
        f"tree: {t['regular_files']:,} regular files, {t['distinct_files']:,} distinct; "
        f"in the image apparent {report['tree_in_image']['apparent_bytes']:,}, "
        f"allocated {report['tree_in_image']['allocated_bytes']:,} "
        f"({mib(report['tree_in_image']['allocated_bytes'])})",
        "",
        "statvfs = free bytes after - before (each after sync + settle); tool = its JSON",
        f"{'Measurement':<34}{'wall s':>9}{'cpu s':>9}{'statvfs':>15}{'tool bytes':>15}"
        f"{'store ovh':>12}{'pyc bytes':>14}{'linked':>8}{'pycs':>7}",
    ]

    def row(label: str, e: dict) -> None:
        pyc = e.get("pyc") or {}

        def num(v) -> str:
            return "" if v is None else f"{v:,}"

        lines.append(
            f"{label:<34}{e['seconds']:>9.3f}{e['cpu_seconds']:>9.2f}"
            f"{num(e.get('statvfs_reclaimed')):>15}{num(e.get('bytes_reclaimed')):>15}"
            f"{num(e.get('store_overhead_bytes')):>12}{num(pyc.get('bytes_reclaimed')):>14}"
            f"{num(e.get('files_linked')):>8}{num(pyc.get('linked')):>7}"
        )

    row("reflink --dry-run", report["reflink_dry"])
    row("reflink", report["reflink"])
    row("reflink no-change rerun", report["reflink_rerun"])
    row("find -type f -printf (best of 3)", report["find_deduplicated_tree"])
    row("hardlink", report["hardlink"])
    row("duperemove -dr -q --hashfile", report["duperemove"])
    rl, hl, dr = report["reflink"], report["hardlink"], report["duperemove"]
    alloc = report["tree_in_image"]["allocated_bytes"]
    lines += [
        "",
        "Reclaimed, share of the tree's allocated bytes (statvfs): "
        f"reflink {rl['statvfs_reclaimed'] / alloc:.1%}, hardlink "
        f"{hl['statvfs_reclaimed'] / alloc:.1%}, duperemove {dr['statvfs_reclaimed'] / alloc:.1%}",
        f"Tool bytes_reclaimed - store_overhead_bytes vs statvfs: reflink "
        f"{rl['bytes_reclaimed'] - rl['store_overhead_bytes']:,} vs "
        f"{rl['statvfs_reclaimed']:,}; hardlink "
        f"{hl['bytes_reclaimed'] - hl['store_overhead_bytes']:,} vs {hl['statvfs_reclaimed']:,}",
        f"duperemove summary: {' | '.join(dr['summary']) or '(none)'}",
        f"reflink pycs: {json.dumps(rl['pyc'], sort_keys=True)}",
        f"hardlink pycs: {json.dumps(hl['pyc'], sort_keys=True)}",
        f"reflink skipped {json.dumps(rl['skipped'], sort_keys=True)}",
        f"tree check after reflink: {json.dumps(report['reflink_tree_check'])}",
        "",
        "Settling (sync, then until free space is unchanged for "
        f"{SETTLE_STABLE_SECONDS:g} s, at most {SETTLE_MAX_SECONDS:g} s):",
    ]
    for name in ("reflink_dry", "reflink", "reflink_rerun", "hardlink", "duperemove"):
        e = report[name]
        b, a = e["settle_before"], e["settle_after"]
        lines.append(
            f"  {name:<14} before: waited {b['waited_seconds']} s, moved {b['moved_bytes']:,} B;"
            f" after: waited {a['waited_seconds']} s, moved {a['moved_bytes']:,} B"
            + ("" if a["stable"] and b["stable"] else "  NOT STABLE")
        )
    lines.append(
        f"  in all {report['settle_total_seconds']} s waited; largest move after a sync "
        f"{report['settle_max_moved_bytes']:,} B"
    )
    gap = report["pyc_blocks"]
    lines += [
        "",
        f"Share of hardlink mode's pyc saving that reflink mode reaches: "
        f"{report['ratios']['reflink_pyc_over_hardlink_pyc']}",
        PYC_GAP_TEXT,
        f"  In this tree: {gap['pycs_of_one_block']:,} pycs of <= {gap['block_size']} B "
        f"({gap['pycs_of_one_block_allocated_bytes']:,} allocated bytes per tree), and "
        f"{gap['pycs_longer']:,} longer ones whose first blocks take {gap['first_blocks_bytes']:,}"
        " B.",
        "",
        "Ratios",
        *[f"  {k:<34} {v}" for k, v in report["ratios"].items()],
        "",
        "Targets (issue #13; DESIGN.md for the rerun; timings are noisy, see load)",
        *[f"  {'met   ' if ok else 'MISSED'}  {k}" for k, ok in report["targets"].items()],
        "",
        "Exactness checks (exit code 1 when one fails)",
        *[f"  {'PASS' if ok else 'FAIL'}  {k}" for k, ok in report["checks"].items()],
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venvs", type=int, default=24, help="number of venvs (default 24)")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=CACHE / "work",
        help="holds the cached pristine tree (default benchmarks/.cache/work, as bench_scan)",
    )
    ap.add_argument(
        "--wheelhouse",
        type=Path,
        default=CACHE / "wheelhouse",
        help="wheel cache (default benchmarks/.cache/wheelhouse)",
    )
    ap.add_argument(
        "--image-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="folder for the sparse image file (default: the temp folder)",
    )
    ap.add_argument(
        "--results",
        type=Path,
        default=HERE / "results",
        help="folder for the text and JSON reports (default benchmarks/results, untracked)",
    )
    ap.add_argument(
        "--json", action="store_true", help="print the JSON report on stdout (table on stderr)"
    )
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("must run as root (mkfs.xfs and mount -o loop)")
    for prog in ("mkfs.xfs", "mount", "umount", "duperemove", "find", "cp", "du"):
        if not shutil.which(prog):
            ap.error(f"{prog} not found (apt-get install xfsprogs duperemove)")

    workdir, wheelhouse = args.workdir.resolve(), args.wheelhouse.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "venvs": args.venvs,
        "loadavg_start": round(os.getloadavg()[0], 2),
        "warm_cache": True,
        "tool_command": " ".join(tool_command()),
        "duperemove_version": tool_version(["duperemove", "--version"]),
        "mkfs_version": tool_version(["mkfs.xfs", "-V"]),
        "duperemove_options": DUPEREMOVE[1:] + ["--hashfile=TMP/hashes (outside the image)"],
    }
    report["wheelhouse"] = ensure_wheelhouse(wheelhouse)
    pristine, report["build"] = ensure_pristine(workdir, args.venvs, wheelhouse)
    report["tree"] = {k: report["build"][k] for k in ("regular_files", "distinct_files")}
    compile_tool()

    allocated = du_bytes([pristine])[1]
    size = max(IMAGE_MIN_BYTES, int(allocated * IMAGE_OVER_TREE))
    size = -(-size // 2**20) * 2**20
    log(f"making a {mib(size)} XFS image (reflink=1) in the image folder")
    image = Image(args.image_dir.resolve(), size)
    failed: str | None = None
    try:
        assert image.mount is not None
        if os.stat(pristine).st_dev == os.stat(image.mount).st_dev:
            raise SystemExit("the pristine tree must not be inside the image (cp would clone)")
        report["image"] = {"size_bytes": size, "block_size": os.statvfs(image.mount).f_frsize}
        report["pyc_blocks"] = pyc_blocks(pristine, report["image"]["block_size"])
        measure_all(pristine, image.mount, report)
    except ToolFailed as exc:
        failed = str(exc)
    finally:
        image.close()
    report["loadavg_end"] = round(os.getloadavg()[0], 2)
    if failed:
        report["tool_error"] = failed
        text = "VENV-DEDUPE FAILED:\n" + failed
    else:
        evaluate(report)
        text = render(report)
    print(text, file=sys.stderr if args.json else sys.stdout)
    blob = json.dumps(report, indent=2, sort_keys=True)
    if args.json:
        print(blob)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"bench-reflink-{args.venvs}v-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    (args.results / f"{stem}.txt").write_text(text + "\n")
    (args.results / f"{stem}.json").write_text(blob + "\n")
    log(f"reports written: {args.results / stem}.txt and .json")
    return 1 if failed or not all(report["checks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
