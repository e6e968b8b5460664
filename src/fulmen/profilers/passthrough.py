"""`PassThroughProfiler`: the default, which records nothing and costs next to nothing."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from fulmen.profilers.profiler import Profiler

__all__ = ["PassThroughProfiler"]

# The trainer enters `profile()` around every hook; one shared, stateless context spares it an
# allocation per call.
_NOTHING = nullcontext()


class PassThroughProfiler(Profiler):
    """Record nothing; used when the Trainer has no profiler.

    Example:
        >>> profiler = PassThroughProfiler()
        >>> with profiler.profile("training_step"):
        ...     pass
        >>> profiler.summary()
        ''
    """

    def start(self, action_name: str) -> None:
        """Do nothing."""

    def stop(self, action_name: str) -> None:
        """Do nothing."""

    def summary(self) -> str:
        """Return an empty report."""
        return ""

    def profile(self, action_name: str) -> AbstractContextManager[Any]:
        """Return a shared context manager that does nothing."""
        return _NOTHING
