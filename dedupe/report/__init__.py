"""Rendering results as text or JSON: a scan's (report.scan) and those of status, verify,
detach and gc (report.maintenance). Each command imports the module it needs."""

from __future__ import annotations

__all__: list[str] = []
