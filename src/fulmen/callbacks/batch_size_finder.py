"""`BatchSizeFinder`: find the largest batch size that fits when a run starts, then use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["BatchSizeFinder"]

_PREFIX = {"fit": "train", "validate": "val", "test": "test", "predict": "predict"}


class BatchSizeFinder(Callback):
    """Find the largest batch size that does not run out of memory, at the start of a run.

    Each trial sets the batch size attribute `batch_arg_name` (on the model, `model.hparams` or
    the datamodule, which must build their dataloaders with it), runs `steps_per_trial` steps and
    checks for an out-of-memory error (CUDA, cuDNN/cuBLAS, or the CPU allocator), starting at
    `init_val`:

    - `mode="power"` doubles the size after each success and keeps the last size that fitted;
    - `mode="binsearch"` doubles until a failure, bisects between the largest size that fitted
      and the smallest that failed, then takes `margin` (a fraction) off the result.

    The search stops after `max_trials` trials (in "binsearch": successful trials), at `max_val`,
    or once the batch size holds the whole dataset. Weights, optimizer and trainer are then
    restored and the run goes on with the size found, which is also in `optimal_batch_size`.
    It runs at the start of fit, validate, test and predict; override those hooks and call
    `scale_batch_size(trainer, pl_module)` elsewhere to search at another time.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from fulmen import Trainer
        >>> from fulmen.demos.boring_classes import BoringModel, RandomDataset
        >>> class Model(BoringModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.batch_size = 2
        ...     def train_dataloader(self):
        ...         return DataLoader(RandomDataset(32, 64), batch_size=self.batch_size)
        >>> finder = BatchSizeFinder(max_trials=3)
        >>> trainer = Trainer(max_epochs=1, limit_val_batches=0, logger=False,
        ...                   enable_checkpointing=False, enable_progress_bar=False,
        ...                   enable_model_summary=False, callbacks=[finder])
        >>> model = Model()
        >>> trainer.fit(model)
        >>> finder.optimal_batch_size, model.batch_size, trainer.num_training_batches
        (8, 8, 8)
    """

    SUPPORTED_MODES = ("power", "binsearch")

    def __init__(
        self,
        mode: str = "power",
        steps_per_trial: int = 3,
        init_val: int = 2,
        max_trials: int = 25,
        batch_arg_name: str = "batch_size",
        margin: float = 0.05,
        max_val: int = 8192,
    ) -> None:
        from fulmen.tuner.batch_size_scaling import check_scale_batch_size_arguments

        self._mode = check_scale_batch_size_arguments(
            mode,
            steps_per_trial,
            init_val,
            max_trials,
            batch_arg_name,
            margin,
            max_val,
            "BatchSizeFinder",
        )
        self._steps_per_trial = steps_per_trial
        self._init_val = init_val
        self._max_trials = max_trials
        self._batch_arg_name = batch_arg_name
        self._margin = margin
        self._max_val = max_val
        # Set by the Tuner: end the run once the batch size is found.
        self._early_exit = False
        self.optimal_batch_size: int | None = init_val

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        from fulmen.tuner.attributes import has_attribute
        from fulmen.tuner.trial import loaders_given_directly

        if trainer.world_size > 1:
            raise MisconfigurationException(
                "BatchSizeFinder runs on one device; this trainer has "
                f"world_size={trainer.world_size}. Find the batch size on one device first."
            )
        prefix = _PREFIX.get(str(stage))
        if prefix is not None and loaders_given_directly(trainer, prefix):
            raise MisconfigurationException(
                f"BatchSizeFinder cannot resize dataloaders passed to `trainer.{stage}()`: it "
                f"changes `{self._batch_arg_name}` and needs the `{prefix}_dataloader()` hook of "
                "the LightningModule or LightningDataModule to build loaders with it."
            )
        name = self._batch_arg_name
        if not has_attribute(pl_module, name):
            raise MisconfigurationException(
                f"BatchSizeFinder(batch_arg_name={name!r}): {type(pl_module).__name__} has no "
                f"attribute {name!r}, in itself, its `hparams`, the datamodule or its `hparams`."
            )
        if hasattr(pl_module, name) and name in pl_module.hparams:
            rank_zero_warn(
                f"Both `model.{name}` and `model.hparams.{name}` exist; the batch-size finder "
                "sets both to every size it tries and to the size it finds. Keep only one, so "
                "that the dataloaders cannot read the other."
            )

    def scale_batch_size(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Search the batch size now; store it in `optimal_batch_size`."""
        from fulmen.tuner.batch_size_scaling import scale_batch_size
        from fulmen.tuner.trial import loaded_eval_loaders, stage_prefix
        from fulmen.tuner.tuning import _TunerExitException

        prefix = stage_prefix(trainer)
        if prefix != "train" and len(loaded_eval_loaders(trainer, prefix)) > 1:
            raise MisconfigurationException(
                f"BatchSizeFinder works with one {prefix} dataloader; this run has "
                f"{len(loaded_eval_loaders(trainer, prefix))}."
            )
        self.optimal_batch_size = scale_batch_size(
            trainer,
            mode=self._mode,
            steps_per_trial=self._steps_per_trial,
            init_val=self._init_val,
            max_trials=self._max_trials,
            batch_arg_name=self._batch_arg_name,
            margin=self._margin,
            max_val=self._max_val,
        )
        if self._early_exit:
            raise _TunerExitException()

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Only for `trainer.validate`: the validation inside fit uses fit's batch size.
        if trainer.sanity_checking or trainer.state.fn != "validate":
            return
        self.scale_batch_size(trainer, pl_module)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.scale_batch_size(trainer, pl_module)
