"""`LearningRateFinder`: run a learning-rate range test when fit starts, then train with its pick."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulmen.callbacks.callback import Callback

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.tuner.lr_finder import _LRFinder

__all__ = ["LearningRateFinder"]


class LearningRateFinder(Callback):
    """Find a good initial learning rate with a range test at the start of fit.

    The learning rate grows from `min_lr` to `max_lr` over `num_training_steps` optimizer steps
    ("exponential" or "linear" `mode`) while the smoothed training loss is recorded; the test
    stops early once that loss exceeds `early_stop_threshold` times its best value (None: never).
    Weights, optimizer and trainer state are then restored, global random state included, and
    with `update_attr` the suggested learning rate (see `_LRFinder.suggestion`) is written to the
    model's `attr_name` (default: `lr` or `learning_rate`, also looked up in `hparams` and the
    datamodule) and to the optimizer, so the fit trains with it. The results are in `optimal_lr`.

    Override `on_fit_start` and call `lr_find(trainer, pl_module)` from another hook to run the
    test at another time (for example when unfreezing a backbone).

    Example:
        >>> import torch
        >>> from fulmen import Trainer
        >>> from fulmen.demos.boring_classes import BoringModel
        >>> class Model(BoringModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.learning_rate = 0.1
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=self.learning_rate)
        >>> finder = LearningRateFinder(num_training_steps=20, early_stop_threshold=None)
        >>> trainer = Trainer(max_steps=25, limit_val_batches=0,
        ...                   logger=False, enable_checkpointing=False, enable_progress_bar=False,
        ...                   enable_model_summary=False, callbacks=[finder])
        >>> model = Model()
        >>> trainer.fit(model)
        >>> len(finder.optimal_lr.results["lr"]), model.learning_rate == finder.optimal_lr.suggestion()
        (20, True)
    """

    SUPPORTED_MODES = ("linear", "exponential")

    def __init__(
        self,
        min_lr: float = 1e-8,
        max_lr: float = 1,
        num_training_steps: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
        update_attr: bool = True,
        attr_name: str = "",
    ) -> None:
        from fulmen.tuner.lr_finder import check_lr_find_arguments

        self._mode = check_lr_find_arguments(
            min_lr, max_lr, num_training_steps, mode, early_stop_threshold, "LearningRateFinder"
        )
        self._min_lr = min_lr
        self._max_lr = max_lr
        self._num_training_steps = num_training_steps
        self._early_stop_threshold = early_stop_threshold
        self._update_attr = update_attr
        self._attr_name = attr_name
        # Set by the Tuner: end the run once the learning rate is found.
        self._early_exit = False
        self.optimal_lr: _LRFinder | None = None

    def lr_find(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Run the range test now; store the results in `optimal_lr`."""
        from fulmen.tuner.lr_finder import lr_find
        from fulmen.tuner.tuning import _TunerExitException
        from fulmen.utilities.seed import isolate_rng

        with isolate_rng():
            self.optimal_lr = lr_find(
                trainer,
                pl_module,
                min_lr=self._min_lr,
                max_lr=self._max_lr,
                num_training=self._num_training_steps,
                mode=self._mode,
                early_stop_threshold=self._early_stop_threshold,
                update_attr=self._update_attr,
                attr_name=self._attr_name,
            )
        if self._early_exit:
            raise _TunerExitException()

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.lr_find(trainer, pl_module)
