"""The version, apart: dedupe.memo keys memos by it, and `--version` needs nothing else."""

__version__ = "0.1.0"
