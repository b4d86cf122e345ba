"""What a command could not do, and where: the problems and skipped venvs every result lists."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "VenvSkip"]


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    error: str


@dataclass(frozen=True, slots=True)
class VenvSkip:
    path: str
    reason: str
