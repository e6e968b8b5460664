"""Type aliases for the public API: what steps return and what dataloader hooks return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.utils.data import DataLoader

__all__ = [
    "STEP_OUTPUT",
    "TRAIN_DATALOADERS",
    "EVAL_DATALOADERS",
    "LRSchedulerConfigType",
    "LRSchedulerConfig",
    "LRSchedulerTypeUnion",
    "OptimizerLRScheduler",
    "_METRIC",
]

STEP_OUTPUT = Tensor | Mapping[str, Any] | None
TRAIN_DATALOADERS = Any  # a DataLoader, or a list/dict of them, or a CombinedLoader
EVAL_DATALOADERS = Any  # a DataLoader or a sequence of them
LRSchedulerTypeUnion = (
    torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
)
OptimizerLRScheduler = Any  # every return format of configure_optimizers
_METRIC = Tensor | int | float
_DATALOADER = DataLoader[Any] | Iterable[Any]


class LRSchedulerConfigType(TypedDict, total=False):
    scheduler: Any
    name: str | None
    interval: str
    frequency: int
    reduce_on_plateau: bool
    monitor: str | None
    strict: bool


class LRSchedulerConfig:
    """A scheduler and when to step it (Lightning's `LRSchedulerConfig`)."""

    def __init__(
        self,
        scheduler: Any,
        name: str | None = None,
        interval: str = "epoch",
        frequency: int = 1,
        reduce_on_plateau: bool = False,
        monitor: str | None = None,
        strict: bool = True,
    ) -> None:
        self.scheduler = scheduler
        self.name = name
        self.interval = interval
        self.frequency = frequency
        self.reduce_on_plateau = reduce_on_plateau
        self.monitor = monitor
        self.strict = strict

    def __repr__(self) -> str:
        return (
            f"LRSchedulerConfig(scheduler={self.scheduler!r}, interval={self.interval!r}, "
            f"frequency={self.frequency}, monitor={self.monitor!r})"
        )


OptimizerConfig = tuple[list[Optimizer], list[LRSchedulerConfig]]
