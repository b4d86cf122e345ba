"""Deciding, file by file, what to link where, and what that reclaims.

Pass 2's Planner takes each worthwhile candidate (dedupe.census), has its bytes proven,
and returns an action; it never changes the filesystem, and it learns about files only
through the Facts it is given (dedupe.proof.Disk in a scan, made-up facts in tests). It
keeps its own model of the store (objects made, link counts), so a dry run and a real
run take the same decisions and report the same figures.
"""

from .planner import Planner

__all__ = ["Planner"]
