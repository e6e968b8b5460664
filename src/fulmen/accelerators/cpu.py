"""Run on the CPU."""

from __future__ import annotations

from typing import Any

import torch

from fulmen.accelerators.accelerator import Accelerator
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["CPUAccelerator"]


class CPUAccelerator(Accelerator):
    """The CPU: one device per process; several devices mean several processes."""

    def setup_device(self, device: torch.device) -> None:
        if device.type != "cpu":
            raise MisconfigurationException(
                f"CPUAccelerator got device {device!r}, expected 'cpu'."
            )

    def get_device_stats(self, device: torch.device | str | int) -> dict[str, Any]:
        try:
            import psutil  # type: ignore[import-untyped]
        except ImportError:
            return {}
        return {
            "cpu_vm_percent": psutil.virtual_memory().percent,
            "cpu_percent": psutil.cpu_percent(),
            "cpu_swap_percent": psutil.swap_memory().percent,
        }

    @staticmethod
    def parse_devices(devices: int | str | list[int]) -> int:
        if isinstance(devices, str):
            devices = 1 if devices == "auto" else int(devices.strip().rstrip(","))
        if isinstance(devices, list):
            devices = len(devices)
        if not isinstance(devices, int) or devices < 1:
            raise MisconfigurationException(
                f"Trainer(devices={devices!r}) is invalid for the CPU: expected an int >= 1."
            )
        return devices

    @staticmethod
    def get_parallel_devices(devices: int | str | list[int]) -> list[torch.device]:
        return [torch.device("cpu")] * CPUAccelerator.parse_devices(devices)

    @staticmethod
    def auto_device_count() -> int:
        return 1

    @staticmethod
    def is_available() -> bool:
        return True
