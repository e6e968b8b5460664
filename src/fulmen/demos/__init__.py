"""Ready-made models and data for tests, bug reports and examples."""

from __future__ import annotations

from fulmen.demos.boring_classes import BoringDataModule, BoringModel, DemoModel

__all__ = ["BoringModel", "BoringDataModule", "DemoModel"]
