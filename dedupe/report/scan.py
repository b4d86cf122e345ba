"""Rendering a scan result as text or as one JSON object."""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from typing import Any

from ..discovery import Kind
from ..reasons import Reason
from ..scan import ScanResult
from ..text import display, human_size, shortened
from .elsewhere import where

__all__ = ["render_problems", "render_text", "to_json"]


def _label(reason: str) -> str:
    try:
        return Reason(reason).label
    except ValueError:  # a reason this version does not know (from a newer memo)
        return reason


def to_json(result: ScanResult) -> str:
    data: dict[str, Any] = dataclasses.asdict(result)
    data["store"] = data["stores"][0] if len(data["stores"]) == 1 else None
    return json.dumps(data, indent=2, ensure_ascii=True)


def render_problems(result: ScanResult) -> str:
    """Errors, warnings, skipped venvs, and roots that held nothing to scan."""
    lines = [f"error: {display(p.path)}: {p.error}" for p in result.errors]
    lines += [f"warning: {display(p.path)}: {p.error}" for p in result.warnings]
    lines += [f"skipped venv: {display(v.path)}: {v.reason}" for v in result.skipped_venvs]
    lines += [f"note: {display(note)}" for note in result.notes]
    return "\n".join(lines)


def _found(r: ScanResult) -> str:
    """How many venvs, and package trees of each kind, the scan found."""
    kinds = Counter(v.kind for v in r.venvs)
    venvs = kinds.pop(Kind.VENV.value, 0)
    if not kinds:
        return f"{venvs} venv(s)"
    trees = ", ".join(f"{n} {Kind(kind).label}" for kind, n in sorted(kinds.items()))
    return f"{venvs} venv(s) and {sum(kinds.values())} package tree(s) ({trees})"


def render_text(result: ScanResult) -> str:
    r = result
    would = "would be " if r.dry_run else ""
    out = []
    title = "venv-dedupe scan (dry run: nothing was changed)" if r.dry_run else "venv-dedupe scan"
    out.append(f"{title}: {_found(r)} under {', '.join(map(display, r.roots))}")
    if r.venvs_unchanged:
        out.append(
            f"{r.venvs_unchanged} of them unchanged since the last scan (folders and RECORDs "
            "as it left them): counted from its memos, not walked to be examined"
        )
    out += _venv_table(r)
    notes = [f"note: {display(v.path)}: {note}" for v in r.venvs for note in v.notes]
    if notes:
        out += ["", *notes]
    out += _file_counts(r, would)
    out += _reclaimed(r, would)
    problems = render_problems(r)
    if problems:
        out.append("")
        out.append(problems)
    return "\n".join(out)


def _venv_table(r: ScanResult) -> list[str]:
    """One row per venv: its files scanned, stored, linked with and without gain, already
    shared, and the bytes reclaimed (of them, the pycs')."""
    if not r.venvs:
        return []
    folder, names = shortened([v.path for v in r.venvs])
    width = max(4, *map(len, names))
    # The kind of each tree, in a last column, once there is any other than a venv.
    kinds = any(v.kind != Kind.VENV.value for v in r.venvs)
    out = [""]
    if folder:
        out.append(f"venvs in {folder}{os.sep}:")
    out.append(
        f"  {'venv':<{width}}  {'files':>7}  {'stored':>7}  {'linked':>7}  {'no gain':>7}  "
        f"{'shared':>7}  {'reclaimed':>10}  {'of it pycs':>10}" + ("  kind" if kinds else "")
    )
    for v, name in zip(r.venvs, names, strict=True):
        out.append(
            f"  {name:<{width}}  {v.files_scanned:>7,}  {v.files_stored:>7,}  "
            f"{v.files_linked - v.files_linked_without_gain:>7,}  "
            f"{v.files_linked_without_gain:>7,}  {v.files_already_shared:>7,}  "
            f"{human_size(v.bytes_reclaimed):>10}  {human_size(v.pyc.bytes_reclaimed):>10}"
            + (f"  {v.kind}" if kinds else "")
        )
    out += [
        "  stored: the copy became the store's object; linked: replaced by a link, its copy",
        "  freed; no gain: replaced by a link, but its inode has other names (uv's cache, for",
        "  example), so nothing was freed; shared: linked by an earlier run",
    ]
    return out


def _file_counts(r: ScanResult, would: str) -> list[str]:
    """What happened to the files and pycs, and why some were skipped."""
    out: list[str] = []
    out.append("")
    out.append(
        f"files: {r.files_scanned:,} scanned, {r.files_eligible:,} eligible, "
        f"{r.files_linked:,} {would}linked, {r.files_already_shared:,} already shared, "
        f"{r.files_stored:,} {would}stored as new objects, {r.files_unique:,} with no copy to share"
    )
    if r.files_linked_without_gain:
        out.append(
            f"  {r.files_linked_without_gain:,} of the linked files had other hardlinks "
            "(a uv or conda cache, for example): relinking them reclaimed nothing"
        )
    if r.replaced_names_elsewhere.names:
        out.append(
            "  the other names of the inodes linked without gain: "
            + where(r.replaced_names_elsewhere)
        )
    if r.object_names_elsewhere.names:
        out.append(
            f"  {r.object_names_elsewhere.names:,} name(s) of the new objects are outside the "
            f"venvs walked: {where(r.object_names_elsewhere)}"
        )
    if r.skipped:
        out.append("skipped:")
        for reason, count in sorted(r.skipped.items(), key=lambda kv: -kv[1]):
            out.append(f"  {count:>9,}  {_label(reason)} [{reason}]")
    p = r.pyc
    if p.scanned:
        out.append(
            f"pycs: {p.scanned:,} beside RECORD sources, {p.linked:,} {would}linked, "
            f"{p.already_shared:,} already shared, {p.stored:,} {would}stored as new objects"
            + (f", {p.rewritten:,} {would}rewritten to stay valid" if p.rewritten else "")
            + (f", {p.kept_private:,} kept private" if p.kept_private else "")
        )
        for reason, count in sorted(p.skipped.items(), key=lambda kv: -kv[1]):
            out.append(f"  {count:>9,}  left as they are: {_label(reason)} [{reason}]")
        for reason, count in sorted(p.not_shared.items(), key=lambda kv: -kv[1]):
            out.append(f"  {count:>9,}  kept valid, not shared: {_label(reason)} [{reason}]")
    return out


def _sharing(link_mode: str) -> str:
    if link_mode == "reflink":
        return "shared by reflinks (each file keeps its inode; du does not see the gain)"
    return "shared by hardlinks"


def _du_covers(r: ScanResult) -> str:
    """What du must be given for the net figure to be the change it shows: the roots, the
    store, and the folders holding other names of the inodes linked without gain (without
    them du would see those inodes go, though they stay on disk)."""
    elsewhere = r.replaced_names_elsewhere
    folders = [display(n.folder) for n in elsewhere.found]
    covered = (
        ", ".join(["the roots", "the store", *folders][:-1])
        + " and "
        + (folders[-1] if folders else "the store")
    )
    line = f"the change `du -s` over {covered} shows"
    if elsewhere.not_found:
        line += (
            f" (and over wherever the {elsewhere.not_found:,} other name(s) not found are, "
            "of inodes linked without gain)"
        )
    memos = sum(s.scan_state_bytes for s in r.stores)
    if memos:
        return line + f", less the scan's memos: {human_size(memos)} in the store"
    return line + ", less the memos a real run keeps in the store"


def _reclaimed(r: ScanResult, would: str) -> list[str]:
    """The bytes reclaimed, what the store's folders took, the stores, leftovers."""
    out: list[str] = []
    verb = "would reclaim" if r.dry_run else "reclaimed"
    out.append(
        f"{verb}: {human_size(r.bytes_reclaimed)} on disk "
        f"({human_size(r.apparent_bytes_reclaimed)} apparent size), of which pycs "
        f"{human_size(r.pyc.bytes_reclaimed)}"
    )
    taken = r.store_overhead_bytes + r.folder_growth_bytes
    if taken or r.replaced_names_elsewhere.names:
        grown = (
            f", the venvs' folders grew by {human_size(r.folder_growth_bytes)} (temp names)"
            if r.folder_growth_bytes
            else ""
        )
        out.append(
            # A dry run counts a block per new folder: filesystems give a folder of
            # many names more (XFS: one per 45 object names), so it is an estimate.
            f"the store's folders {'would take about' if r.dry_run else 'took'} "
            f"{human_size(r.store_overhead_bytes)}{grown}: net "
            f"{human_size(r.bytes_reclaimed - taken)}, {_du_covers(r)}"
        )
    for s in r.stores:
        if s.exists:
            out.append(
                f"store {display(s.path)}: {s.objects:,} objects, {_sharing(s.link_mode)}"
                + (
                    f"; memos {human_size(s.scan_state_bytes)} (scan-cache/, trash/)"
                    if s.scan_state_bytes
                    else ""
                )
                + " (`venv-dedupe status` shows what they save, and any unused)"
            )
        else:
            out.append(f"store {display(s.path)}: {would}created, {_sharing(s.link_mode)}")
    if r.leftovers_removed:
        out.append(f"removed {r.leftovers_removed} temp file(s) left by an interrupted run")
    return out + _recovered(r)


def _recovered(r: ScanResult) -> list[str]:
    """What the stores' journals said of killed runs, and what became of it."""
    j = r.recovery
    out = []
    if j.pycs_healed or j.temp_files_removed:
        healed, removed = ("would heal", "would remove") if r.dry_run else ("healed", "removed")
        out.append(
            f"journal: {healed} {j.pycs_healed:,} pyc(s), {removed} {j.temp_files_removed:,} "
            "temp file(s) from a killed run"
        )
    if j.entries_kept:
        out.append(
            f"journal: {j.entries_kept:,} entr(ies) of a killed run kept for venvs outside "
            "these roots: a scan of them finishes their work"
        )
    if j.entries_dropped:
        verb = "would drop" if r.dry_run else "dropped"
        out.append(f"journal: {verb} {j.entries_dropped:,} entr(ies) of venvs that are gone")
    return out
