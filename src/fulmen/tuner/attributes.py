"""Find a tuned hyperparameter (`lr`, `batch_size`, ...) where Lightning looks for it.

The places, in order: the module itself, `module.hparams`, the attached datamodule, and the
datamodule's `hparams`. Reading takes the last place that has the name; writing sets it in every
place that has it, so the module and its datamodule never disagree after tuning.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule

__all__ = ["get_attribute", "has_attribute", "set_attribute"]


def _holders(module: LightningModule, name: str) -> list[Any]:
    holders: list[Any] = []
    for owner in (module, _datamodule(module)):
        if owner is None:
            continue
        if hasattr(owner, name):
            holders.append(owner)
        hparams = getattr(owner, "hparams", None)
        if isinstance(hparams, MutableMapping) and name in hparams:
            holders.append(hparams)
    return holders


def _datamodule(module: LightningModule) -> Any:
    trainer = module._trainer
    return None if trainer is None else trainer.datamodule


def has_attribute(module: LightningModule, name: str) -> bool:
    """Whether `name` is on the module, its hparams, the datamodule or the datamodule's hparams.

    Example:
        >>> from fulmen.demos.boring_classes import BoringModel
        >>> model = BoringModel()
        >>> model.save_hyperparameters({"lr": 0.1})
        >>> has_attribute(model, "lr"), has_attribute(model, "batch_size")
        (True, False)
    """
    return bool(_holders(module, name))


def get_attribute(module: LightningModule, name: str) -> Any:
    """Read `name` from the last place that has it (the datamodule wins over the module).

    Example:
        >>> from fulmen.demos.boring_classes import BoringModel
        >>> model = BoringModel()
        >>> model.batch_size = 4
        >>> get_attribute(model, "batch_size")
        4
    """
    holders = _holders(module, name)
    if not holders:
        raise AttributeError(
            f"{name!r} is not an attribute of {type(module).__name__}, of its `hparams`, of "
            "the datamodule or of the datamodule's `hparams`."
        )
    holder = holders[-1]
    return holder[name] if isinstance(holder, MutableMapping) else getattr(holder, name)


def set_attribute(module: LightningModule, name: str, value: Any) -> None:
    """Set `name` to `value` in every place that has it.

    Example:
        >>> from fulmen.demos.boring_classes import BoringModel
        >>> model = BoringModel()
        >>> model.save_hyperparameters({"lr": 0.1})
        >>> set_attribute(model, "lr", 0.02)
        >>> model.hparams.lr
        0.02
    """
    holders = _holders(module, name)
    if not holders:
        raise AttributeError(
            f"{name!r} is not an attribute of {type(module).__name__}, of its `hparams`, of "
            "the datamodule or of the datamodule's `hparams`: nothing to set."
        )
    for holder in holders:
        if isinstance(holder, MutableMapping):
            holder[name] = value
        else:
            setattr(holder, name, value)
