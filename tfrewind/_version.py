"""The package version, below every module (the run directory records it; ``--version`` prints it)."""

__version__ = "0.1.0"
