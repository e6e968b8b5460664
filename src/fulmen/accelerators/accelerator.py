"""The `Accelerator` base: which hardware runs the model and how many devices it offers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

__all__ = ["Accelerator"]


class Accelerator(ABC):
    """A kind of hardware (CPU, CUDA GPU, Apple MPS)."""

    def setup_device(self, device: torch.device) -> None:
        """Prepare `device` for use by this process."""

    def setup(self, trainer: Any) -> None:
        """Called at the start of a run."""

    def teardown(self) -> None:
        """Release what `setup_device` prepared."""

    def get_device_stats(self, device: torch.device | str | int) -> dict[str, Any]:
        """Return memory and usage figures for `device` (empty where none are available)."""
        return {}

    @staticmethod
    @abstractmethod
    def parse_devices(devices: Any) -> Any:
        """Turn the Trainer's `devices` argument into what `get_parallel_devices` takes."""

    @staticmethod
    @abstractmethod
    def get_parallel_devices(devices: Any) -> list[torch.device]:
        """Return the devices this process group uses on this node."""

    @staticmethod
    @abstractmethod
    def auto_device_count() -> int:
        """How many devices `devices="auto"` means."""

    @staticmethod
    @abstractmethod
    def is_available() -> bool:
        """Whether this hardware is present."""
