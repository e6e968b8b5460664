"""TPUs through XLA are not supported by fulmen; the class exists for import compatibility."""

from __future__ import annotations

from typing import Any

import torch

from fulmen.accelerators.accelerator import Accelerator
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["XLAAccelerator"]


class XLAAccelerator(Accelerator):
    """TPU/XLA: not supported; constructing it says so."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(
            "XLAAccelerator (TPU) is not supported by fulmen. Use accelerator='cpu' or 'cuda'."
        )

    @staticmethod
    def parse_devices(devices: Any) -> Any:
        return devices

    @staticmethod
    def get_parallel_devices(devices: Any) -> list[torch.device]:
        return []

    @staticmethod
    def auto_device_count() -> int:
        return 0

    @staticmethod
    def is_available() -> bool:
        return False
