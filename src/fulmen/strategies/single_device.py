"""One process, one device: the default strategy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from fulmen.plugins.io import CheckpointIO
from fulmen.plugins.precision import Precision
from fulmen.strategies.strategy import Strategy

if TYPE_CHECKING:
    from fulmen.accelerators.accelerator import Accelerator

__all__ = ["SingleDeviceStrategy"]


class SingleDeviceStrategy(Strategy):
    """Run the model on one device in this process.

    Example:
        >>> SingleDeviceStrategy(device="cpu").root_device
        device(type='cpu')
    """

    strategy_name = "single_device"

    def __init__(
        self,
        device: torch.device | str | int = "cpu",
        accelerator: Accelerator | None = None,
        checkpoint_io: CheckpointIO | None = None,
        precision_plugin: Precision | None = None,
    ) -> None:
        super().__init__(accelerator, checkpoint_io, precision_plugin)
        if isinstance(device, int):
            device = torch.device("cuda", device)
        self._root_device = torch.device(device)

    @property
    def root_device(self) -> torch.device:
        return self._root_device
