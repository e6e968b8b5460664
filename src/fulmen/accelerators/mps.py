"""Run on Apple silicon GPUs."""

from __future__ import annotations

import torch

from fulmen.accelerators.accelerator import Accelerator
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["MPSAccelerator"]


class MPSAccelerator(Accelerator):
    """Apple's Metal Performance Shaders backend: one device."""

    @staticmethod
    def parse_devices(devices: int | str | list[int]) -> list[int]:
        if devices in ("auto", 1, "1", [0], -1, "-1"):
            return [0]
        raise MisconfigurationException(
            f"Trainer(devices={devices!r}) is invalid for MPS: there is one MPS device."
        )

    @staticmethod
    def get_parallel_devices(devices: int | str | list[int]) -> list[torch.device]:
        return [torch.device("mps", i) for i in MPSAccelerator.parse_devices(devices)]

    @staticmethod
    def auto_device_count() -> int:
        return 1

    @staticmethod
    def is_available() -> bool:
        return torch.backends.mps.is_available()
