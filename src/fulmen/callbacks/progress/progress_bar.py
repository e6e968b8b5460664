"""The `ProgressBar` base: what every bar needs to know about the loop, and nothing about drawing.

Totals, descriptions and the metrics shown next to a bar live here; `TQDMProgressBar` and
`RichProgressBar` only decide how to draw them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fulmen.callbacks.callback import Callback
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """Base class for progress bars: totals, descriptions, metrics and enable/disable.

    Subclasses draw the bars from the hooks; `get_metrics` decides what is shown beside them.

    Example:
        >>> class PrintingBar(ProgressBar):
        ...     def on_train_epoch_end(self, trainer, pl_module):
        ...         self.print(f"epoch {trainer.current_epoch}:", self.get_metrics(trainer, pl_module))
        >>> bar = PrintingBar()
        >>> bar.is_enabled, bar.train_description
        (True, 'Training')
        >>> bar.disable()
        >>> bar.is_disabled
        True
    """

    def __init__(self) -> None:
        self._trainer: Trainer | None = None
        self._current_eval_dataloader_idx: int | None = None
        self._enabled = True

    @property
    def trainer(self) -> Trainer:
        """The trainer this bar is attached to; set in `setup`."""
        if self._trainer is None:
            raise TypeError(f"The `{type(self).__name__}._trainer` reference has not been set yet.")
        return self._trainer

    @property
    def sanity_check_description(self) -> str:
        return "Sanity Checking"

    @property
    def train_description(self) -> str:
        return "Training"

    @property
    def validation_description(self) -> str:
        return "Validation"

    @property
    def test_description(self) -> str:
        return "Testing"

    @property
    def predict_description(self) -> str:
        return "Predicting"

    @property
    def total_train_batches(self) -> int | float:
        """Training batches in one epoch; `float('inf')` when the loader has no length."""
        return self.trainer.num_training_batches

    @property
    def total_val_batches_current_dataloader(self) -> int | float:
        """Batches of the validation (or sanity check) dataloader that is running."""
        trainer = self.trainer
        batches = (
            trainer.num_sanity_val_batches if trainer.sanity_checking else trainer.num_val_batches
        )
        return batches[self._current_eval_dataloader_idx or 0]

    @property
    def total_test_batches_current_dataloader(self) -> int | float:
        """Batches of the test dataloader that is running."""
        return self.trainer.num_test_batches[self._current_eval_dataloader_idx or 0]

    @property
    def total_predict_batches_current_dataloader(self) -> int | float:
        """Batches of the predict dataloader that is running."""
        return self.trainer.num_predict_batches[self._current_eval_dataloader_idx or 0]

    @property
    def total_val_batches(self) -> int | float:
        """Validation batches over all dataloaders if this training epoch validates, else 0."""
        trainer = self.trainer
        every_n = trainer.check_val_every_n_epoch
        if not trainer.enable_validation:
            return 0
        if every_n is not None and (trainer.current_epoch + 1) % every_n != 0:
            return 0
        return sum(trainer.num_val_batches)

    def has_dataloader_changed(self, dataloader_idx: int) -> bool:
        """Remember `dataloader_idx` and tell whether it differs from the one seen before."""
        previous = self._current_eval_dataloader_idx
        self._current_eval_dataloader_idx = dataloader_idx
        return previous != dataloader_idx

    def reset_dataloader_idx_tracker(self) -> None:
        """Forget the evaluation dataloader seen last, so the next batch starts a new bar."""
        self._current_eval_dataloader_idx = None

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def is_disabled(self) -> bool:
        return not self.is_enabled

    def disable(self) -> None:
        """Stop drawing; the trainer calls this on every rank but global rank zero."""
        self._enabled = False

    def enable(self) -> None:
        """Draw again after `disable`."""
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print without breaking the bars (the base class has none to break)."""
        print(*args, **kwargs)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer
        if not trainer.is_global_zero:
            self.disable()

    def get_metrics(
        self, trainer: Trainer, pl_module: LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        """Return the values shown beside the bar: `v_num` (logger version) and `prog_bar` metrics.

        Override this to add or hide entries. Reading `trainer.progress_bar_metrics` may wait for
        the device, so bars call this only when they redraw.
        """
        metrics: dict[str, int | str | float | dict[str, float]] = {}
        logger = trainer.logger
        version = None if logger is None else logger.version
        if version is not None:
            # Long string versions (e.g. a run name) would crowd the bar; their tail tells runs apart.
            metrics["v_num"] = version[-4:] if isinstance(version, str) else version
        shown = trainer.progress_bar_metrics
        clashes = sorted(metrics.keys() & shown.keys())
        if clashes:
            rank_zero_warn(
                f"A metric logged with `prog_bar=True` is named {', '.join(map(repr, clashes))}, "
                "which the progress bar already shows; the logged value replaces it. Rename the "
                "metric or override `get_metrics()` in the progress bar to keep both."
            )
        metrics.update(shown)
        return metrics
