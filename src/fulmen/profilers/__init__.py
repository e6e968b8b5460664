"""Profilers: time what the trainer does, hook by hook (Lightning's `profilers`)."""

from __future__ import annotations

from fulmen.profilers.advanced import AdvancedProfiler
from fulmen.profilers.passthrough import PassThroughProfiler
from fulmen.profilers.profiler import Profiler
from fulmen.profilers.pytorch import PyTorchProfiler
from fulmen.profilers.simple import SimpleProfiler
from fulmen.profilers.xla import XLAProfiler

__all__ = [
    "AdvancedProfiler",
    "PassThroughProfiler",
    "Profiler",
    "PyTorchProfiler",
    "SimpleProfiler",
    "XLAProfiler",
]
