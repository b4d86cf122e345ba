"""Rendering a scan result as text or as one JSON object."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..reasons import Reason
from ..scan import ScanResult
from ..text import display, human_size

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
    lines = [f"error: {display(p.path)}: {p.error}" for p in result.errors]
    lines += [f"warning: {display(p.path)}: {p.error}" for p in result.warnings]
    lines += [f"skipped venv: {display(v.path)}: {v.reason}" for v in result.skipped_venvs]
    return "\n".join(lines)


def render_text(result: ScanResult) -> str:
    r = result
    would = "would be " if r.dry_run else ""
    out = []
    title = "venv-dedupe scan (dry run: nothing was changed)" if r.dry_run else "venv-dedupe scan"
    out.append(f"{title}: {len(r.venvs)} venv(s) under {', '.join(map(display, r.roots))}")
    if r.venvs_unchanged:
        out.append(
            f"{r.venvs_unchanged} of them unchanged since the last scan (folders and RECORDs "
            "as it left them): counted from its memos, not walked to be examined"
        )
    out += _venv_table(r)
    out += _file_counts(r, would)
    out += _reclaimed(r, would)
    problems = render_problems(r)
    if problems:
        out.append("")
        out.append(problems)
    return "\n".join(out)


def _venv_table(r: ScanResult) -> list[str]:
    """One row per venv: its files scanned, linked, already shared, and bytes reclaimed."""
    if not r.venvs:
        return []
    out: list[str] = []
    width = min(max(len(display(v.path)) for v in r.venvs), 60)
    out.append("")
    out.append(
        f"  {'venv':<{width}}  {'files':>7}  {'linked':>7}  {'shared':>7}  {'reclaimed':>10}"
    )
    for v in r.venvs:
        name = display(v.path)
        if len(name) > width:
            name = "..." + name[-(width - 3) :]
        out.append(
            f"  {name:<{width}}  {v.files_scanned:>7,}  {v.files_linked:>7,}  "
            f"{v.files_already_shared:>7,}  {human_size(v.bytes_reclaimed):>10}"
        )
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
    return out


def _reclaimed(r: ScanResult, would: str) -> list[str]:
    """The bytes reclaimed, what the store's folders took, the stores, leftovers."""
    out: list[str] = []
    verb = "would reclaim" if r.dry_run else "reclaimed"
    out.append(
        f"{verb}: {human_size(r.bytes_reclaimed)} on disk "
        f"({human_size(r.apparent_bytes_reclaimed)} apparent size), of which pycs "
        f"{human_size(r.pyc.bytes_reclaimed)}"
    )
    if r.store_overhead_bytes:
        out.append(
            f"the store's folders {'would take' if r.dry_run else 'took'} "
            f"{human_size(r.store_overhead_bytes)}: net "
            f"{human_size(r.bytes_reclaimed - r.store_overhead_bytes)}, the change du shows "
            "(beside the memos the scan keeps, see below)"
        )
    for s in r.stores:
        if s.exists:
            out.append(
                f"store {display(s.path)}: {s.objects:,} objects"
                + (f"; memos {human_size(s.scan_state_bytes)}" if s.scan_state_bytes else "")
                + " (`venv-dedupe status` shows what they save, and any unused)"
            )
        else:
            out.append(f"store {display(s.path)}: {would}created")
    if r.leftovers_removed:
        out.append(f"removed {r.leftovers_removed} temp file(s) left by an interrupted run")
    return out
