"""The one error hierarchy of venv-dedupe; the CLI maps it to messages and exit codes."""

from __future__ import annotations

# Seconds a run waits for another run's lock before StoreLockedError (here, not in
# dedupe.maintenance, so that the CLI can show it in --help without importing the machinery).
DEFAULT_LOCK_TIMEOUT = 60.0


class DedupeError(Exception):
    """Root of every error venv-dedupe raises on purpose."""


class UsageError(DedupeError):
    """The caller asked for something that cannot work (a missing root, a bad option)."""


class StoreError(DedupeError):
    """A store cannot be used: wrong format, not creatable, not writable."""


class StoreLockedError(StoreError):
    """Another venv-dedupe run holds the store's lock."""


class CloneError(DedupeError):
    """A clone cannot be made: SRC is no venv, DST is not empty, or they are apart."""
