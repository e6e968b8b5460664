"""`EarlyStopping`: stop fitting when a monitored metric stops improving."""

from __future__ import annotations

import logging
from enum import Enum
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["EarlyStopping", "EarlyStoppingReason"]

log = logging.getLogger(__name__)


class EarlyStoppingReason(Enum):
    """Why `EarlyStopping` stopped the run (stored in checkpoints by value)."""

    NOT_STOPPED = 0
    STOPPING_THRESHOLD = 1
    DIVERGENCE_THRESHOLD = 2
    PATIENCE_EXHAUSTED = 3
    NON_FINITE_METRIC = 4


class EarlyStopping(Callback):
    """Stop fitting when `monitor` has not improved for `patience` checks in a row.

    A check happens after every validation run, or at the end of every training epoch when
    `check_on_train_epoch_end` resolves True (None: True when validation runs once at the end of
    every epoch). Patience therefore counts checks, not epochs.

    Args:
        min_delta: An improvement smaller than or equal to this counts as none.
        patience: Checks without improvement after which fitting stops.
        strict: Raise if `monitor` is missing from `trainer.callback_metrics`, instead of
            skipping the check.
        check_finite: Stop as soon as the metric is NaN or infinite.
        stopping_threshold: Stop as soon as the metric is better than this.
        divergence_threshold: Stop as soon as the metric is worse than this.
        log_rank_zero_only: With several processes, report only from rank zero.

    Example:
        >>> early_stopping = EarlyStopping(monitor="val_loss", patience=2)
        >>> early_stopping.state_key
        "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"
    """

    mode_dict = {"min": torch.lt, "max": torch.gt}
    order_dict = {"min": "<", "max": ">"}

    def __init__(
        self,
        monitor: str,
        min_delta: float = 0.0,
        patience: int = 3,
        verbose: bool = False,
        mode: str = "min",
        strict: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_on_train_epoch_end: bool | None = None,
        log_rank_zero_only: bool = False,
    ) -> None:
        if mode not in self.mode_dict:
            raise MisconfigurationException(
                f"EarlyStopping(mode={mode!r}) is invalid: expected 'min' or 'max'."
            )
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.mode = mode
        self.strict = strict
        self.check_finite = check_finite
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self.log_rank_zero_only = log_rank_zero_only
        self._check_on_train_epoch_end = check_on_train_epoch_end
        # Stored with the sign that makes "current - min_delta beats best" the improvement test
        # in both modes (Lightning exposes the signed value too).
        self.min_delta = min_delta if mode == "max" else -min_delta
        self.wait_count = 0
        self.stopped_epoch = 0
        self.best_score: Tensor = torch.tensor(float("inf") if mode == "min" else float("-inf"))
        self.stopping_reason = EarlyStoppingReason.NOT_STOPPED
        self.stopping_reason_message: str | None = None

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint; unique per monitor and mode."""
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    @property
    def monitor_op(self) -> Any:
        """`torch.lt` in min mode, `torch.gt` in max mode: "is the first better?"."""
        return self.mode_dict[self.mode]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Decide where the check runs, if the user left it to the trainer's validation cadence."""
        if self._check_on_train_epoch_end is None:
            # Validation once at the end of each epoch: checking at the epoch end sees the same
            # validation metrics plus anything logged in `on_train_epoch_end`.
            self._check_on_train_epoch_end = (
                trainer.val_check_interval == 1.0 and trainer.check_val_every_n_epoch == 1
            )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check at the end of the training epoch, when that is where checks run."""
        if self._check_on_train_epoch_end and not self._should_skip_check(trainer):
            self._run_early_stopping_check(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check after validation, when that is where checks run."""
        if not self._check_on_train_epoch_end and not self._should_skip_check(trainer):
            self._run_early_stopping_check(trainer)

    def state_dict(self) -> dict[str, Any]:
        """Return the progress of the check; plain values and a tensor, so it loads safely."""
        return {
            "wait_count": self.wait_count,
            "stopped_epoch": self.stopped_epoch,
            "best_score": self.best_score,
            "patience": self.patience,
            "stopping_reason": self.stopping_reason.value,
            "stopping_reason_message": self.stopping_reason_message,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state returned by `state_dict`."""
        self.wait_count = state_dict["wait_count"]
        self.stopped_epoch = state_dict["stopped_epoch"]
        self.best_score = state_dict["best_score"]
        self.patience = state_dict["patience"]
        self.stopping_reason = EarlyStoppingReason(
            state_dict.get("stopping_reason", EarlyStoppingReason.NOT_STOPPED.value)
        )
        self.stopping_reason_message = state_dict.get("stopping_reason_message")

    # The public methods below are the ones to override in a subclass. The underscore names are
    # Lightning's; they forward to the public ones, so subclasses written for Lightning work too.

    def should_skip_check(self, trainer: Trainer) -> bool:
        """Whether to skip the check now: outside fit and during the sanity check."""
        return trainer.state.fn != "fit" or trainer.sanity_checking

    def _should_skip_check(self, trainer: Trainer) -> bool:
        return self.should_skip_check(trainer)

    def _run_early_stopping_check(self, trainer: Trainer) -> None:
        self.run_early_stopping_check(trainer)

    def _evaluate_stopping_criteria(self, current: Tensor) -> tuple[bool, str | None]:
        return self.evaluate_stopping_criteria(current)

    def run_early_stopping_check(self, trainer: Trainer) -> None:
        """Read the monitored metric, update the state, and ask the trainer to stop if due."""
        metrics = trainer.callback_metrics
        if trainer.fast_dev_run or not self._monitor_is_available(metrics):
            return
        current = metrics[self.monitor].squeeze()
        should_stop, reason = self._evaluate_stopping_criteria(current)
        # One rank wanting to stop stops all, or the others would wait forever in a collective.
        should_stop = trainer.strategy.reduce_boolean_decision(should_stop, all=False)
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop:
            self.stopped_epoch = trainer.current_epoch
            self.stopping_reason_message = reason
        if reason and self.verbose:
            self._log_info(trainer, reason)

    def _monitor_is_available(self, metrics: dict[str, Tensor]) -> bool:
        if self.monitor in metrics:
            return True
        message = (
            f"EarlyStopping(monitor={self.monitor!r}) found no such metric in "
            f"`trainer.callback_metrics`; available: {sorted(metrics)}. Log it with "
            f"`self.log({self.monitor!r}, value)`, change `monitor`, or pass strict=False."
        )
        if self.strict:
            raise RuntimeError(message)
        if self.verbose:
            rank_zero_warn(message, category=RuntimeWarning)
        return False

    def evaluate_stopping_criteria(self, current: Tensor) -> tuple[bool, str | None]:
        """Update the state with `current`; return whether to stop and a message saying why."""
        better = self.monitor_op
        if self.check_finite and not torch.isfinite(current):
            self.stopping_reason = EarlyStoppingReason.NON_FINITE_METRIC
            return True, (
                f"Monitored metric {self.monitor} = {current.item()} is not finite (best so far:"
                f" {self.best_score:.3f}). Signaling Trainer to stop."
            )
        if self.stopping_threshold is not None and better(current, self.stopping_threshold):
            self.stopping_reason = EarlyStoppingReason.STOPPING_THRESHOLD
            return True, (
                f"Monitored metric {self.monitor} = {current.item():.6g} reached the stopping "
                f"threshold ({self.order_dict[self.mode]} {self.stopping_threshold}). "
                "Signaling Trainer to stop."
            )
        if self.divergence_threshold is not None and better(-current, -self.divergence_threshold):
            self.stopping_reason = EarlyStoppingReason.DIVERGENCE_THRESHOLD
            return True, (
                f"Monitored metric {self.monitor} = {current.item():.6g} crossed the divergence "
                f"threshold ({self.divergence_threshold}). Signaling Trainer to stop."
            )
        if better(current - self.min_delta, self.best_score.to(current.device)):
            message = self._improvement_message(current)
            self.best_score = current.detach().clone()
            self.wait_count = 0
            return False, message
        self.wait_count += 1
        if self.wait_count < self.patience:
            return False, None
        self.stopping_reason = EarlyStoppingReason.PATIENCE_EXHAUSTED
        return True, (
            f"Monitored metric {self.monitor} did not improve in the last {self.wait_count} records."
            f" Best score: {self.best_score:.3f}. Signaling Trainer to stop."
        )

    def _improvement_message(self, current: Tensor) -> str:
        if torch.isfinite(self.best_score):
            gain = abs(self.best_score.item() - current.item())
            return (
                f"Metric {self.monitor} improved by {gain:.3f} (min_delta = {abs(self.min_delta)})."
                f" New best score: {current.item():.3f}"
            )
        return f"Metric {self.monitor} improved. New best score: {current.item():.3f}"

    def _log_info(self, trainer: Trainer, message: str) -> None:
        if trainer.world_size > 1:
            if self.log_rank_zero_only and trainer.global_rank != 0:
                return
            message = f"[rank: {trainer.global_rank}] {message}"
        log.info(message)
