"""Exceptions raised by fulmen."""

from __future__ import annotations

__all__ = ["MisconfigurationException", "SIGTERMException"]


class MisconfigurationException(Exception):
    """The trainer, the module or the data are set up in a way that cannot work."""


class SIGTERMException(SystemExit):
    """Raised to end a run after the process received SIGTERM."""
