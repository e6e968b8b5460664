"""Layer synchronization: swap layers for versions that share statistics across processes."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["LayerSync", "TorchSyncBatchNorm"]

# Attribute of a converted SyncBatchNorm that remembers what it was converted from.
_ORIGIN = "_fulmen_batchnorm_origin"
# What training changes on the synchronized layer, which `revert` carries back; every other
# attribute (class, hooks, the user's own attributes) comes from the original layer.
_CARRIED_BACK = ("_parameters", "_buffers", "_modules", "training", "momentum", "eps")


class LayerSync(ABC):
    """Replace layers with versions that synchronize across processes (`apply`), and back.

    Example:
        >>> issubclass(TorchSyncBatchNorm, LayerSync)
        True
    """

    @abstractmethod
    def apply(self, model: nn.Module) -> nn.Module:
        """Return `model` with its layers replaced by synchronizing ones."""

    @abstractmethod
    def revert(self, model: nn.Module) -> nn.Module:
        """Return `model` with every replacement made by `apply` undone."""


@dataclass(frozen=True)
class _BatchNormOrigin:
    """The class and attributes of a layer that `TorchSyncBatchNorm.apply` replaced."""

    cls: type[nn.Module]
    attributes: dict[str, Any]


class TorchSyncBatchNorm(LayerSync):
    """Swap every `BatchNorm*d` for `torch.nn.SyncBatchNorm`; `revert` restores the originals.

    The swap shares the parameters and buffers, so nothing is copied and training state carries
    over. `revert` rebuilds each layer with its original class (e.g. `BatchNorm2d`, or a user's
    subclass) and attributes, holding the current weights and running statistics. Layers that were
    `SyncBatchNorm` before `apply` stay so. Only modules with several processes synchronize.

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
        >>> layer_sync = TorchSyncBatchNorm()
        >>> model = layer_sync.apply(model)
        >>> type(model[1]).__name__
        'SyncBatchNorm'
        >>> type(layer_sync.revert(model)[1]).__name__
        'BatchNorm1d'
    """

    def apply(self, model: nn.Module) -> nn.Module:
        """Return `model` with each batch norm layer replaced by a `SyncBatchNorm` (in place)."""
        converted = model
        if isinstance(model, _BatchNorm) and not isinstance(model, nn.SyncBatchNorm):
            converted = _to_sync_batchnorm(model)
        for name, child in list(model.named_children()):
            converted.add_module(name, self.apply(child))
        return converted

    def revert(self, model: nn.Module) -> nn.Module:
        """Return `model` with each `SyncBatchNorm` made by `apply` back in its original class."""
        reverted = model
        origin = model.__dict__.get(_ORIGIN)
        if isinstance(model, nn.SyncBatchNorm) and isinstance(origin, _BatchNormOrigin):
            reverted = origin.cls.__new__(origin.cls)
            state = {**origin.attributes, **{key: model.__dict__[key] for key in _CARRIED_BACK}}
            # Own copies of the bookkeeping dicts (hooks, parameters), shared with no other module.
            reverted.__dict__.update(
                {
                    key: copy.copy(value) if isinstance(value, (dict, set)) else value
                    for key, value in state.items()
                }
            )
        for name, child in list(reverted.named_children()):
            reverted.add_module(name, self.revert(child))
        return reverted


def _to_sync_batchnorm(batchnorm: _BatchNorm) -> nn.SyncBatchNorm:
    # torch's converter shares parameters and buffers and keeps `training` and `qconfig`.
    sync: nn.SyncBatchNorm = torch.nn.SyncBatchNorm.convert_sync_batchnorm(batchnorm)  # type: ignore[no-untyped-call]
    attributes = {k: v for k, v in batchnorm.__dict__.items() if k not in _CARRIED_BACK}
    setattr(sync, _ORIGIN, _BatchNormOrigin(type(batchnorm), attributes))
    return sync
