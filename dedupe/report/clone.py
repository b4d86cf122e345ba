"""Rendering a clone's result as text or as one JSON object."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..clone import CloneResult, CopyReason
from ..text import display, human_size

__all__ = ["render_clone", "to_json"]

_LISTED = 20  # copied files named in the text report; JSON names them all


def to_json(result: CloneResult) -> str:
    data: dict[str, Any] = dataclasses.asdict(result)
    data["copied"] = [{"path": c.path, "reason": c.reason.value} for c in result.copied]
    return json.dumps(data, indent=2, ensure_ascii=True)


def render_clone(result: CloneResult) -> str:
    r = result
    title = "venv-dedupe clone (dry run: nothing was changed)" if r.dry_run else "venv-dedupe clone"
    would = "would " if r.dry_run else ""
    copied = sum(r.files_copied.values())
    written = sum(r.files_written.values())
    out = [
        title,
        f"  {display(r.src)} -> {display(r.dst)} ({r.distributions:,} distribution(s), "
        f"store {display(r.store)}, {r.link_mode} mode)",
        f"  adopted into the store first: {r.adopted:,} of SRC's file(s) "
        f"(store folders +{human_size(r.store_bytes_added)})",
        f"  {would}link: {r.files_linked:,} file(s) and {r.pycs_linked:,} pyc(s)",
        f"  {would}write anew: {written:,} file(s)" + _counts(r.files_written),
        f"  {would}copy: {copied:,} file(s)",
    ]
    for reason, n in r.files_copied.items():
        out.append(f"    {n:>7,}  {CopyReason(reason).label}")
    for c in r.copied[:_LISTED]:
        out.append(f"    {display(c.path)}: {c.reason.value}")
    if len(r.copied) > _LISTED:
        out.append(f"    ... and {len(r.copied) - _LISTED:,} more (--json lists them all)")
    adds = "would add" if r.dry_run else "added"
    out.append(f"  {adds} to the disk: {human_size(r.bytes_added)}")
    out.append(f"  time: {r.seconds:.2f} s")
    out += [f"error: {display(e)}" for e in r.errors]
    return "\n".join(out)


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{n:,} {kind}" for kind, n in counts.items()) + ")"
