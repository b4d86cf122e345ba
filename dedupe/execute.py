"""How decisions are carried out: the Executor protocol every way of sharing implements,
and the dry run's executor, which changes nothing.

A scan asks the planner (dedupe.plan) for decisions and hands each one to its executor:
`DryRun` here, or one that writes: `dedupe.link.Hardlinks`, or `dedupe.link.Reflinks`
where a store shares by copy-on-write. Whatever an executor
could not do it raises as Failed (nothing changed) or TooManyLinks (the object is full);
what it did to a store object it reports back as Observed, for the planner's model of
the store. A dry run and a real run take the same decisions because only this object
differs between them.
"""

from __future__ import annotations

from typing import Protocol

from .decisions import Adopt, ClonePyc, CreatePyc, Link, Observed, RewritePyc
from .problems import Problem
from .reasons import Reason
from .tree import At

__all__ = ["DryRun", "Executor", "Failed", "Observed", "TooManyLinks"]


class Failed(Exception):
    """The action was not carried out; nothing changed. reason is a skip reason."""

    def __init__(self, reason: Reason, message: str, *, error: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.error = error


class TooManyLinks(Exception):
    """The object reached the filesystem's link limit (EMLINK)."""


class Executor(Protocol):
    """Carries out the planner's decisions, and removes what killed runs left."""

    def adopt(self, action: Adopt) -> Observed | None:
        """The candidate's inode becomes the object. None: nothing was changed (dry run)."""

    def link(self, action: Link) -> Observed | None:
        """The candidate's name now shares the object's data."""

    def create_pyc(self, action: CreatePyc) -> Observed | None:
        """A new pyc object holds action.data."""

    def rewrite_pyc(self, action: RewritePyc) -> int | None:
        """The venv pyc is a private copy holding action.data: its new inode number.
        None: nothing was changed (dry run)."""

    def clone_pyc(self, action: ClonePyc) -> int | None:
        """The venv pyc is a clone of its group's object with its own header: its new
        inode number."""

    def remove_leftover(self, at: At) -> bool:
        """A temp name a killed run left in a venv folder is gone; whether it was there."""

    def remove_store_leftover(self, path: str) -> bool:
        """The same for a temp name in the store."""

    def close(self) -> list[Problem]:
        """Wait for work still under way (files being freed); what failed in it."""


class DryRun:
    """The dry run's executor: every decision is taken as done, nothing is changed, and
    the planner's own model of the store is the only record of it."""

    def adopt(self, action: Adopt) -> Observed | None:
        return None

    def link(self, action: Link) -> Observed | None:
        return None

    def create_pyc(self, action: CreatePyc) -> Observed | None:
        return None

    def rewrite_pyc(self, action: RewritePyc) -> int | None:
        return None

    def clone_pyc(self, action: ClonePyc) -> int | None:
        return None

    def remove_leftover(self, at: At) -> bool:
        return False

    def remove_store_leftover(self, path: str) -> bool:
        return False

    def close(self) -> list[Problem]:
        return []
