"""Layer synchronization: batch-norm statistics shared across processes."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

__all__ = ["LayerSync", "TorchSyncBatchNorm"]


class LayerSync(ABC):
    """Replace layers with versions that synchronize across processes, and back."""

    @abstractmethod
    def apply(self, model: nn.Module) -> nn.Module: ...

    @abstractmethod
    def revert(self, model: nn.Module) -> nn.Module: ...


class TorchSyncBatchNorm(LayerSync):
    """Swap `BatchNorm*d` layers for `torch.nn.SyncBatchNorm`."""

    def apply(self, model: nn.Module) -> nn.Module:
        converted: nn.Module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
        return converted

    def revert(self, model: nn.Module) -> nn.Module:
        return model
