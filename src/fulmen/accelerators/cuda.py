"""Run on NVIDIA GPUs."""

from __future__ import annotations

from typing import Any

import torch

from fulmen.accelerators.accelerator import Accelerator
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["CUDAAccelerator", "find_usable_cuda_devices"]


class CUDAAccelerator(Accelerator):
    """NVIDIA GPUs through CUDA."""

    def setup_device(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise MisconfigurationException(
                f"CUDAAccelerator got device {device!r}, expected cuda."
            )
        torch.cuda.set_device(device)

    def get_device_stats(self, device: torch.device | str | int) -> dict[str, Any]:
        return dict(torch.cuda.memory_stats(device))

    def teardown(self) -> None:
        torch.cuda.empty_cache()

    @staticmethod
    def parse_devices(devices: int | str | list[int]) -> list[int]:
        count = torch.cuda.device_count()
        if isinstance(devices, str):
            if devices == "auto" or devices.strip() == "-1":
                return list(range(count))
            if "," in devices:
                return [int(d) for d in devices.split(",") if d.strip()]
            devices = int(devices)
        if isinstance(devices, int):
            devices = list(range(count)) if devices == -1 else list(range(devices))
        bad = [d for d in devices if d < 0 or d >= count]
        if not devices or bad:
            raise MisconfigurationException(
                f"Trainer(devices={devices!r}) asks for CUDA devices that are not here: this "
                f"machine has {count} (indices 0..{count - 1})."
            )
        return list(devices)

    @staticmethod
    def get_parallel_devices(devices: Any) -> list[torch.device]:
        return [torch.device("cuda", i) for i in CUDAAccelerator.parse_devices(devices)]

    @staticmethod
    def auto_device_count() -> int:
        return torch.cuda.device_count()

    @staticmethod
    def is_available() -> bool:
        return torch.cuda.is_available()


def find_usable_cuda_devices(num_devices: int = -1) -> list[int]:
    """Return indices of CUDA devices that can allocate memory (all of them for -1)."""
    usable: list[int] = []
    for index in range(torch.cuda.device_count()):
        if num_devices != -1 and len(usable) >= num_devices:
            break
        try:
            torch.zeros(1, device=torch.device("cuda", index))
        except RuntimeError:
            continue
        usable.append(index)
    if num_devices != -1 and len(usable) < num_devices:
        raise RuntimeError(f"Asked for {num_devices} usable CUDA devices, found {len(usable)}.")
    return usable
