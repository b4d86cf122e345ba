"""Rendering the results of status, verify, detach and gc as text or as one JSON object."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ..maintenance import DetachResult, GcResult, StatusResult, VerifyResult
from ..problems import Problem, VenvSkip
from ..text import display, human_size, shortened
from .elsewhere import where

__all__ = ["Result", "render_detach", "render_gc", "render_status", "render_verify", "to_json"]

Result = StatusResult | VerifyResult | DetachResult | GcResult


def to_json(result: Result) -> str:
    data: dict[str, Any] = dataclasses.asdict(result)
    if isinstance(result, VerifyResult):
        data["ok"] = result.ok
    return json.dumps(data, indent=2, ensure_ascii=True)


def _problems(
    notes: tuple[str, ...] = (),
    skipped: tuple[VenvSkip, ...] = (),
    errors: tuple[Problem, ...] = (),
    warnings: tuple[Problem, ...] = (),
) -> list[str]:
    lines = [f"note: {display(n)}" for n in notes]
    lines += [f"error: {display(p.path)}: {p.error}" for p in errors]
    lines += [f"warning: {display(p.path)}: {p.error}" for p in warnings]
    lines += [f"skipped venv: {display(v.path)}: {v.reason}" for v in skipped]
    return ["", *lines] if lines else []


def _damaged(count: int) -> str:
    """Status and gc name the damaged objects apart from the objects, in the same words."""
    return f" (and {count:,} damaged, moved aside by verify --repair)" if count else ""


def render_status(result: StatusResult) -> str:
    r = result
    out = [f"venv-dedupe status: {len(r.venvs)} venv(s) under {', '.join(map(display, r.roots))}"]
    if r.venvs:
        folder, names = shortened([v.path for v in r.venvs])
        width = max(4, *map(len, names))
        out.append("")
        if folder:
            out.append(f"venvs in {folder}{os.sep}:")
        blocks = any(v.bytes_in_shared_blocks for v in r.venvs)
        out.append(
            f"  {'venv':<{width}}  {'shared files':>12}  {'saves':>10}"
            + (f"  {'in shared blocks':>16}" if blocks else "")
        )
        for v, name in zip(r.venvs, names, strict=True):
            saves = human_size(v.bytes_saved) if v.store else "no store"
            out.append(
                f"  {name:<{width}}  {v.files_shared:>12,}  {saves:>10}"
                + (f"  {human_size(v.bytes_in_shared_blocks):>16}" if blocks else "")
            )
        if blocks:
            out.append(
                "  in shared blocks: copy-on-write, the bytes of its files that share blocks "
                "with other files (the store's copy); the store's line tells the saving"
            )
    if r.distributions:
        width = max(len(d.name) for d in r.distributions)
        vwidth = max(7, *(len(d.version) for d in r.distributions))
        out += [
            "",
            f"  {'distribution':<{max(width, 12)}}  {'version':<{vwidth}}  {'venvs':>5}  "
            f"{'files':>7}  {'saves':>10}",
        ]
        for d in r.distributions:
            out.append(
                f"  {d.name:<{max(width, 12)}}  {d.version:<{vwidth}}  {d.venvs:>5,}  "
                f"{d.files_shared:>7,}  {human_size(d.bytes_saved):>10}"
            )
    out.append("")
    for s in r.stores:
        line = (
            f"store {display(s.path)}: {s.objects:,} objects{_damaged(s.damaged_objects)}, "
            f"{s.unused_objects:,} unused"
            + (
                f" ({human_size(s.unused_bytes)}: `venv-dedupe gc` removes them)"
                if s.unused_objects
                else ""
            )
            + f"; sharing saves {human_size(s.bytes_saved)}"
        )
        out.append(line)
        if s.links_outside_roots:
            out += [
                f"  {s.links_outside_roots:,} name(s) of its objects are outside the venvs "
                f"looked at: {where(s.outside_roots)}",
                "  (their share of the saving is not shown per venv)",
            ]
    out.append(f"saved in total: {human_size(r.bytes_saved)} ({r.files_shared:,} shared files)")
    out += _problems(r.notes, r.skipped_venvs, warnings=r.warnings)
    return "\n".join(out)


def render_verify(result: VerifyResult) -> str:
    r = result
    stores = ", ".join(map(display, r.stores)) or "no store"
    out = [
        f"venv-dedupe verify: {r.objects_checked:,} object(s) checked in {stores}: "
        + (f"{len(r.damaged):,} damaged" if r.damaged else "all intact")
    ]
    for d in r.damaged:
        out += ["", f"damaged: {display(d.path)}", f"  {d.problem}"]
        if d.linked_files:
            out.append(f"  its bytes are in {len(d.linked_files):,} venv file(s):")
            for f in d.linked_files:
                dist = f" ({f.distribution})" if f.distribution else " (in no RECORD)"
                out.append(f"    {display(f.path)}{dist}")
        missing = d.other_links - len(d.linked_files)
        if missing > 0:
            out.append(
                f"  {missing:,} other name(s) of it are outside the venvs looked at: "
                + where(d.outside_roots)
            )
        if d.outside_roots.found:
            names = sorted({f.distribution.name for f in d.linked_files if f.distribution})
            out.append(
                "  those caches hold the damaged bytes too: clean them first (for uv: "
                f"`uv cache clean {' '.join(names) or 'NAME'}`), or a reinstall from them, "
                "in any link mode, brings the damage back"
            )
        if d.moved_to:
            out.append(f"  moved to {display(d.moved_to)}: no scan will link to it again")
    if r.repairs:
        out += ["", "to give each venv intact files again, reinstall in it:"]
        for rep in r.repairs:
            if rep.command:
                out.append(f"  {rep.command}")
                if rep.note:
                    out.append(f"    ({rep.note})")
            else:
                paths = ", ".join(map(display, rep.paths))
                out.append(
                    f"  {display(rep.venv)}: no RECORD lists {paths}: reinstall what owns it"
                )
    if r.damaged and r.repair:
        moved = sum(1 for d in r.damaged if d.moved_to)
        out += [
            "",
            f"repair: moved {moved:,} damaged object(s) out of the store; the venv files "
            "keep their bytes until the commands above are run",
        ]
    elif r.damaged:
        out += ["", "run `venv-dedupe verify --repair` to move damaged objects out of the store"]
    out += _problems(r.notes, r.skipped_venvs, r.errors)
    return "\n".join(out)


def render_detach(result: DetachResult) -> str:
    r = result
    verb = "would give" if r.dry_run else "gave"
    title = (
        "venv-dedupe detach (dry run: nothing was changed)" if r.dry_run else "venv-dedupe detach"
    )
    out = [title]
    for v in r.venvs:
        if v.store is None:
            out.append(f"  {display(v.path)}: no store, nothing shared")
            continue
        done = v.files_shared if r.dry_run else v.files_detached
        out.append(
            f"  {display(v.path)}: {verb} {done:,} of {v.files_shared:,} shared file(s) "
            f"private copies ({human_size(v.bytes_needed)})"
        )
    for c in r.space:
        state = "fits" if c.fits else "does NOT fit: a real run refuses"
        out.append(
            f"space on {display(c.mount_point)}: {human_size(c.bytes_needed)} needed, "
            f"{human_size(c.bytes_available)} free (keeping {human_size(c.margin)} spare): {state}"
        )
    if not r.dry_run and r.files_detached:
        out.append("objects no venv uses any more stay in the store until `venv-dedupe gc`")
    out += _problems(r.notes, r.skipped_venvs, r.errors)
    return "\n".join(out)


def render_gc(result: GcResult) -> str:
    r = result
    title = "venv-dedupe gc (dry run: nothing was changed)" if r.dry_run else "venv-dedupe gc"
    verb = "would remove" if r.dry_run else "removed"
    freed = "would free" if r.dry_run else "freed"
    out = [
        f"{title}: store {display(r.store)}, {r.objects:,} object(s){_damaged(r.damaged_objects)}",
        f"{verb} {r.files_removed:,} unused object(s), {freed} {human_size(r.bytes_freed)} "
        f"({human_size(r.apparent_bytes_freed)} apparent size)"
        + (f", and {r.folders_removed:,} empty folder(s)" if r.folders_removed else ""),
    ]
    out += _problems(r.notes, errors=r.errors)
    return "\n".join(out)
