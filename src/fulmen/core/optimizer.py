"""Optimizers: the `LightningOptimizer` wrapper and reading what `configure_optimizers` returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.optim import Optimizer

from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn
from fulmen.utilities.types import LRSchedulerConfig

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer

__all__ = ["LightningOptimizer"]

_SCHEDULER_KEYS = {
    "scheduler",
    "name",
    "interval",
    "frequency",
    "monitor",
    "strict",
    "reduce_on_plateau",
}
_OPTIMIZER_DICT_KEYS = {"optimizer", "lr_scheduler", "monitor"}


class LightningOptimizer:
    """An optimizer as `self.optimizers()` returns it: `step()` also runs hooks and counts steps.

    Every other attribute (`param_groups`, `state`, ...) is the wrapped optimizer's.
    """

    def __init__(self, optimizer: Optimizer, trainer: Trainer | None = None) -> None:
        self._optimizer = optimizer
        self._trainer = trainer

    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._optimizer, name)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
        """Run `closure` (if any), the before-step hooks, then the optimizer's step."""
        trainer = self._trainer
        if trainer is None:
            return self._optimizer.step(closure=closure, **kwargs)
        return trainer._optimizer_step(self._optimizer, closure, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return self._optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"LightningOptimizer({self._optimizer!r})"


def _is_scheduler(obj: Any) -> bool:
    return isinstance(
        obj, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    ) or (hasattr(obj, "step") and hasattr(obj, "optimizer") and not isinstance(obj, Optimizer))


def _scheduler_config(
    scheduler: Any, default_monitor: str | None, automatic: bool
) -> LRSchedulerConfig:
    """Normalise a scheduler or a scheduler dict into an `LRSchedulerConfig`."""
    if isinstance(scheduler, Mapping):
        if "scheduler" not in scheduler:
            raise MisconfigurationException(
                "A scheduler dict in `configure_optimizers` must have a 'scheduler' key; got "
                f"keys {sorted(scheduler)}."
            )
        extra = set(scheduler) - _SCHEDULER_KEYS
        if extra:
            rank_zero_warn(
                f"Unknown keys {sorted(extra)} in the scheduler dict of `configure_optimizers` are "
                f"ignored; allowed keys are {sorted(_SCHEDULER_KEYS)}."
            )
        config = {k: v for k, v in scheduler.items() if k in _SCHEDULER_KEYS}
    else:
        config = {"scheduler": scheduler}
    interval = config.get("interval", "epoch")
    if interval not in ("epoch", "step"):
        raise MisconfigurationException(
            f"The scheduler 'interval' {interval!r} is invalid: expected 'epoch' or 'step'."
        )
    frequency = config.get("frequency", 1)
    if not isinstance(frequency, int) or frequency < 1:
        raise MisconfigurationException(
            f"The scheduler 'frequency' {frequency!r} is invalid: expected an int >= 1."
        )
    sched = config["scheduler"]
    on_plateau = config.get(
        "reduce_on_plateau", isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    )
    monitor = config.get("monitor", default_monitor)
    if automatic and on_plateau and monitor is None:
        raise MisconfigurationException(
            "`ReduceLROnPlateau` needs a metric to monitor: return "
            '{"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}} '
            "from `configure_optimizers`."
        )
    if not automatic and (monitor is not None or on_plateau):
        rank_zero_warn(
            "With manual optimization the scheduler's 'monitor' is not used: step the scheduler "
            "yourself in `training_step` or `on_*_epoch_end`."
        )
    if automatic and interval == "epoch" and isinstance(sched, torch.optim.lr_scheduler.OneCycleLR):
        rank_zero_warn(
            "OneCycleLR is stepped once per epoch with the default 'interval': 'epoch'. It is "
            'usually meant per step: return {"scheduler": sched, "interval": "step"}.'
        )
    return LRSchedulerConfig(
        scheduler=sched,
        name=config.get("name"),
        interval=interval,
        frequency=frequency,
        reduce_on_plateau=bool(on_plateau),
        monitor=monitor,
        strict=config.get("strict", True),
    )


def init_optimizers_and_schedulers(
    returned: Any, automatic: bool
) -> tuple[list[Optimizer], list[LRSchedulerConfig]]:
    """Read every return format of `configure_optimizers` into optimizers and scheduler configs."""
    optimizers: list[Any]
    schedulers: list[Any] = []
    monitor: str | None = None
    if returned is None:
        rank_zero_warn(
            "`configure_optimizers` returned None: the model is run without an optimizer and "
            "its weights do not change."
        )
        return [], []
    if isinstance(returned, Optimizer):
        optimizers = [returned]
    elif isinstance(returned, Mapping):
        optimizers, schedulers, monitor = _read_optimizer_dict(returned)
    elif (
        isinstance(returned, Sequence)
        and len(returned) == 2
        and isinstance(returned[0], Sequence)
        and all(isinstance(o, Optimizer) for o in returned[0])
    ):
        optimizers = list(returned[0])
        second = returned[1]
        schedulers = list(second) if isinstance(second, Sequence) else [second]
    elif isinstance(returned, Sequence) and all(isinstance(o, Optimizer) for o in returned):
        optimizers = list(returned)
    elif isinstance(returned, Sequence) and all(isinstance(d, Mapping) for d in returned):
        optimizers = []
        for entry in returned:
            opts, scheds, mon = _read_optimizer_dict(entry)
            optimizers += opts
            schedulers += [_with_monitor(s, mon) for s in scheds]
    else:
        raise MisconfigurationException(
            f"`configure_optimizers` returned {type(returned).__name__}, which is not a supported "
            "format. Return an optimizer, a list of optimizers, ([optimizers], [schedulers]), "
            'or a dict {"optimizer": ..., "lr_scheduler": ...} (or a list of such dicts).'
        )
    for opt in optimizers:
        if not isinstance(opt, Optimizer):
            raise MisconfigurationException(
                f"`configure_optimizers` returned {opt!r} where an optimizer was expected."
            )
    if automatic and len(optimizers) > 1:
        raise MisconfigurationException(
            "Training with multiple optimizers is only supported with manual optimization. Set "
            "`self.automatic_optimization = False` and step them in `training_step`."
        )
    configs = [_scheduler_config(s, monitor, automatic) for s in schedulers]
    for config in configs:
        if not _is_scheduler(config.scheduler):
            raise MisconfigurationException(
                f"{config.scheduler!r} in `configure_optimizers` is not a learning-rate scheduler."
            )
    return optimizers, configs


def _with_monitor(scheduler: Any, monitor: str | None) -> Any:
    if monitor is None or isinstance(scheduler, Mapping):
        return scheduler
    return {"scheduler": scheduler, "monitor": monitor}


def _read_optimizer_dict(entry: Mapping[str, Any]) -> tuple[list[Any], list[Any], str | None]:
    if "optimizer" not in entry:
        raise MisconfigurationException(
            "A dict returned by `configure_optimizers` needs an 'optimizer' key; got keys "
            f"{sorted(entry)}."
        )
    extra = set(entry) - _OPTIMIZER_DICT_KEYS
    if extra:
        rank_zero_warn(
            f"Unknown keys {sorted(extra)} in the dict returned by `configure_optimizers` are "
            f"ignored; allowed keys are {sorted(_OPTIMIZER_DICT_KEYS)}."
        )
    scheduler = entry.get("lr_scheduler")
    return (
        [entry["optimizer"]],
        ([scheduler] if scheduler is not None else []),
        entry.get("monitor"),
    )
