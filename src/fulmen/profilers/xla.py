"""`XLAProfiler`: Lightning's TPU profiler; fulmen does not run on XLA, so it cannot be built."""

from __future__ import annotations

from fulmen.profilers.profiler import Profiler
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["XLAProfiler"]


class XLAProfiler(Profiler):
    """Profile on XLA devices (TPUs); not supported, so building one raises.

    Example:
        >>> XLAProfiler()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fulmen.utilities.exceptions.MisconfigurationException: XLAProfiler(port=9012) is not ...
    """

    def __new__(cls, port: int = 9012) -> XLAProfiler:
        # Raised in __new__ so that no half-built profiler exists that a caller could try to use.
        raise MisconfigurationException(
            f"XLAProfiler(port={port!r}) is not available: fulmen does not support XLA/TPU devices. "
            "Use SimpleProfiler, AdvancedProfiler or PyTorchProfiler."
        )
