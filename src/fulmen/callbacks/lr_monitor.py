"""`LearningRateMonitor`: send each optimizer's learning rate (and momentum, weight decay) to the loggers."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import torch
from torch.optim import Optimizer

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["LearningRateMonitor"]


class _Tracked:
    """An optimizer, the interval of its scheduler (None without one) and a key per param group."""

    def __init__(self, optimizer: Optimizer, interval: str | None, names: list[str]) -> None:
        self.optimizer = optimizer
        self.interval = interval
        self.names = names


class LearningRateMonitor(Callback):
    """Log the learning rate of every optimizer param group to the trainer's loggers.

    Keys are `lr-{OptimizerClass}` (`-1`, `-2`... for repeated classes) or the scheduler's
    `name`, then `/{group name}` for named param groups and `/pg1`, `/pg2`... for unnamed ones
    when there are several; `-momentum` and `-weight_decay` are appended for those values.

    Args:
        logging_interval: `"step"` logs before every training batch (at the logger's cadence,
            `log_every_n_steps`), `"epoch"` at every epoch start, None follows each scheduler's
            own interval (and logs optimizers without a scheduler at both).
        log_momentum: also log the momentum (`betas[0]` for Adam-like optimizers).
        log_weight_decay: also log the weight decay.

    Example:
        >>> monitor = LearningRateMonitor(logging_interval="step", log_momentum=True)
        >>> # Trainer(callbacks=[monitor]).fit(model) logs {"lr-SGD": 0.1, "lr-SGD-momentum": 0.9}
        >>> # for `SGD(lr=0.1, momentum=0.9)`; `monitor.lrs` keeps every value it logged.
        >>> monitor.lrs
        {}
    """

    def __init__(
        self,
        logging_interval: str | None = None,
        log_momentum: bool = False,
        log_weight_decay: bool = False,
    ) -> None:
        if logging_interval not in (None, "step", "epoch"):
            raise MisconfigurationException(
                f"LearningRateMonitor(logging_interval={logging_interval!r}) is invalid: expected "
                "'step', 'epoch' or None (follow each scheduler's interval)."
            )
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        self.lrs: dict[str, list[Any]] = {}
        self.last_momentum_values: dict[str, Any] = {}
        self.last_weight_decay_values: dict[str, Any] = {}
        self._tracked: list[_Tracked] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.loggers:
            raise MisconfigurationException(
                "Cannot use `LearningRateMonitor` callback with `Trainer` that has no logger."
            )
        if self.log_momentum and not all(_has_momentum(opt) for opt in trainer.optimizers):
            rank_zero_warn(
                "LearningRateMonitor(log_momentum=True): some optimizers have no momentum "
                "(neither `momentum` nor `betas`); 0 is logged for them.",
                category=RuntimeWarning,
            )
        self._find_names(trainer.optimizers, trainer.lr_scheduler_configs)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.logging_interval == "epoch" or not _is_logging_step(trainer):
            return
        self._log(trainer, "step" if self.logging_interval is None else "any")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.logging_interval == "step":
            return
        self._log(trainer, "epoch" if self.logging_interval is None else "any")

    def _log(self, trainer: Trainer, interval: str) -> None:
        stats = self._extract_stats(interval)
        if stats:
            # As in Lightning: other callbacks (e.g. EarlyStopping) may monitor the rate.
            trainer.callback_metrics.update({k: torch.tensor(v) for k, v in stats.items()})
            for logger in trainer.loggers:
                logger.log_metrics(stats, step=trainer.global_step)

    def _find_names(self, optimizers: list[Optimizer], scheduler_configs: list[Any]) -> list[str]:
        # Scheduled optimizers are named first, as in Lightning, so "-1" suffixes land alike.
        seen: Counter[str] = Counter()

        def default_name(optimizer: Optimizer) -> str:
            # A second Adam is "lr-Adam-1", a third "lr-Adam-2".
            base = f"lr-{type(optimizer).__name__}"
            count = seen[base]
            seen[base] += 1
            return base if count == 0 else f"{base}-{count}"

        tracked: list[_Tracked] = []
        scheduled: list[Optimizer] = []
        for config in scheduler_configs:
            optimizer = config.scheduler.optimizer
            scheduled.append(optimizer)
            name = config.name or default_name(optimizer)
            tracked.append(_Tracked(optimizer, config.interval, _group_names(optimizer, name)))
        for optimizer in optimizers:
            if not any(optimizer is other for other in scheduled):
                tracked.append(
                    _Tracked(optimizer, None, _group_names(optimizer, default_name(optimizer)))
                )
        self._tracked = tracked
        names = [name for entry in tracked for name in entry.names]
        self.lrs = {name: [] for name in names}
        return names

    def _extract_stats(self, interval: str) -> dict[str, Any]:
        # `interval` is "step", "epoch" or "any". Optimizers without a scheduler are read at every
        # interval: their learning rate may be changed by hand at any time.
        stats: dict[str, Any] = {}
        for entry in self._tracked:
            if entry.interval is not None and interval not in ("any", entry.interval):
                continue
            uses_betas = "betas" in entry.optimizer.defaults
            for group, name in zip(entry.optimizer.param_groups, entry.names):
                stats[name] = group["lr"]
                self.lrs[name].append(group["lr"])
                if self.log_momentum:
                    momentum = group["betas"][0] if uses_betas else group.get("momentum", 0)
                    stats[f"{name}-momentum"] = momentum
                    self.last_momentum_values[f"{name}-momentum"] = momentum
                if self.log_weight_decay:
                    weight_decay = group.get("weight_decay", 0)
                    stats[f"{name}-weight_decay"] = weight_decay
                    self.last_weight_decay_values[f"{name}-weight_decay"] = weight_decay
        return stats


def _has_momentum(optimizer: Optimizer) -> bool:
    return "momentum" in optimizer.defaults or "betas" in optimizer.defaults


def _is_logging_step(trainer: Trainer) -> bool:
    # The same cadence as `self.log` values, so both land on the same logger steps.
    every_n = trainer.log_every_n_steps
    return (every_n > 0 and (trainer.global_step + 1) % every_n == 0) or trainer.should_stop


def _group_names(optimizer: Optimizer, name: str) -> list[str]:
    groups = optimizer.param_groups
    if len(groups) == 1 and "name" not in groups[0]:
        return [name]
    names = [f"{name}/{group.get('name', f'pg{i + 1}')}" for i, group in enumerate(groups)]
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        raise MisconfigurationException(
            f"LearningRateMonitor: the param groups of {type(optimizer).__name__} ({name!r}) "
            f"share the keys {repeated}; give each param group a unique 'name'."
        )
    return names
