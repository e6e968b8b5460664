"""`GradientAccumulationScheduler`: change `accumulate_grad_batches` from epoch to epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["GradientAccumulationScheduler"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class GradientAccumulationScheduler(Callback):
    """Accumulate gradients over a number of batches that changes at given epochs.

    `scheduling` maps a starting epoch to the factor used from that epoch on; epoch 0 uses 1
    unless it is given. The factor is set on `trainer.accumulate_grad_batches` as each training
    epoch starts, so leave `Trainer(accumulate_grad_batches=...)` at its default of 1.

    Example:
        >>> scheduler = GradientAccumulationScheduler(scheduling={4: 2, 8: 4})
        >>> [scheduler.get_accumulate_grad_batches(epoch) for epoch in (0, 3, 4, 7, 8, 20)]
        [1, 1, 2, 2, 4, 4]
    """

    def __init__(self, scheduling: dict[int, int]) -> None:
        if not isinstance(scheduling, dict) or not scheduling:
            raise MisconfigurationException(
                f"GradientAccumulationScheduler(scheduling={scheduling!r}) is invalid: expected a "
                "non-empty dict {epoch: accumulate_grad_batches}, e.g. {0: 1, 4: 2}."
            )
        bad_epochs = [epoch for epoch in scheduling if not _is_int(epoch) or epoch < 0]
        if bad_epochs:
            raise MisconfigurationException(
                f"GradientAccumulationScheduler(scheduling={scheduling!r}) is invalid: the epochs "
                f"{bad_epochs} are not ints >= 0."
            )
        bad_factors = [f for f in scheduling.values() if not _is_int(f) or f < 1]
        if bad_factors:
            raise MisconfigurationException(
                f"GradientAccumulationScheduler(scheduling={scheduling!r}) is invalid: the "
                f"factors {bad_factors} are not ints >= 1."
            )
        self.scheduling = dict(sorted({0: 1, **scheduling}.items()))
        self.epochs = list(self.scheduling)
        # The trainer's value before this fit, put back when the fit ends.
        self._trainer_value: int | None = None

    def going_to_accumulate_grad_batches(self) -> bool:
        """Whether any epoch accumulates more than one batch."""
        return any(factor > 1 for factor in self.scheduling.values())

    def get_accumulate_grad_batches(self, epoch: int) -> int:
        """The factor used in `epoch`: that of the last scheduled epoch at or before it."""
        factor = 1
        for start, scheduled in self.scheduling.items():
            if start > epoch:
                break
            factor = scheduled
        return factor

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not pl_module.automatic_optimization:
            raise RuntimeError(
                "GradientAccumulationScheduler needs automatic optimization; with "
                "`automatic_optimization = False` accumulate in `training_step` yourself, or "
                "remove the callback."
            )
        if trainer.accumulate_grad_batches != 1:
            raise ValueError(
                f"Trainer(accumulate_grad_batches={trainer.accumulate_grad_batches!r}) and a "
                "GradientAccumulationScheduler both set the accumulation. Remove one of the two."
            )
        self._trainer_value = trainer.accumulate_grad_batches

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore(trainer)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._restore(trainer)

    def _restore(self, trainer: Trainer) -> None:
        # Hand the trainer back as it was, so that another `fit` passes the check above.
        if self._trainer_value is not None:
            trainer.accumulate_grad_batches = self._trainer_value
            self._trainer_value = None
