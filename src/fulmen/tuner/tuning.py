"""`Tuner`: find a learning rate or a batch size before training, as Lightning's `Tuner` does.

Each method adds a finder callback (`LearningRateFinder`, `BatchSizeFinder`) to the trainer, runs
the entry point (`fit`, or `validate`/`test`/`predict` for batch sizes), and the callback ends the
run right after tuning by raising `_TunerExitException` from its start hook. The trainer treats
that exception as a clean end: teardown hooks run, `on_exception` hooks do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.callbacks.callback import Callback
    from fulmen.core.datamodule import LightningDataModule
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.tuner.lr_finder import _LRFinder

__all__ = ["Tuner"]

_METHODS = ("fit", "validate", "test", "predict")


class _TunerExitException(Exception):
    """Raised by a finder callback that runs for the `Tuner`: end the entry point, it is done."""


class Tuner:
    """Tune a model's learning rate or batch size with a Trainer.

    Example:
        >>> import torch
        >>> from fulmen import Trainer
        >>> from fulmen.demos.boring_classes import BoringModel
        >>> class Model(BoringModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.lr = 0.1
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=self.lr)
        >>> trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
        ...                   enable_progress_bar=False, enable_model_summary=False)
        >>> _ = torch.manual_seed(0)
        >>> model = Model()
        >>> finder = Tuner(trainer).lr_find(model, num_training=30, early_stop_threshold=None)
        >>> len(finder.results["lr"]), model.lr == finder.suggestion()
        (30, True)
    """

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer

    def scale_batch_size(
        self,
        model: LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        method: str = "fit",
        mode: str = "power",
        steps_per_trial: int = 3,
        init_val: int = 2,
        max_trials: int = 25,
        batch_arg_name: str = "batch_size",
        margin: float = 0.05,
        max_val: int = 8192,
    ) -> int | None:
        """Find the largest batch size that fits in memory; set it on the model and return it.

        `method` picks the entry point whose steps are tried. The batch size is read from and
        written to `batch_arg_name` on the model, `model.hparams` or the datamodule, and the
        dataloader hooks must build their loaders with it. See `BatchSizeFinder` for `mode`,
        `margin` and `max_val`. Returns None under `fast_dev_run`, which skips the search.
        """
        from fulmen.callbacks.batch_size_finder import BatchSizeFinder
        from fulmen.tuner.batch_size_scaling import check_scale_batch_size_arguments

        _check_tuner_configuration(train_dataloaders, val_dataloaders, dataloaders, method)
        check_scale_batch_size_arguments(
            mode,
            steps_per_trial,
            init_val,
            max_trials,
            batch_arg_name,
            margin,
            max_val,
            "Tuner.scale_batch_size",
        )
        trainer = self._trainer
        if trainer.world_size > 1:
            raise ValueError(
                "Tuner.scale_batch_size runs on one device; this trainer has "
                f"world_size={trainer.world_size}. Tune on one device, then launch the run."
            )
        _check_not_configured(trainer, BatchSizeFinder)
        finder = BatchSizeFinder(
            mode=mode,
            steps_per_trial=steps_per_trial,
            init_val=init_val,
            max_trials=max_trials,
            batch_arg_name=batch_arg_name,
            margin=margin,
            max_val=max_val,
        )
        self._run_with(
            finder, model, method, train_dataloaders, val_dataloaders, dataloaders, datamodule
        )
        return finder.optimal_batch_size

    def lr_find(
        self,
        model: LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        method: str = "fit",
        min_lr: float = 1e-8,
        max_lr: float = 1,
        num_training: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
        update_attr: bool = True,
        attr_name: str = "",
    ) -> _LRFinder | None:
        """Run a learning-rate range test; return its results (`.results`, `.suggestion()`, `.plot()`).

        The learning rate grows from `min_lr` to `max_lr` over `num_training` optimizer steps
        ("exponential" or "linear"); the test stops early when the smoothed loss exceeds
        `early_stop_threshold` times its best value. With `update_attr`, the suggestion is set
        on the model's `attr_name` (default: `lr` or `learning_rate`, also in `hparams`).
        Weights and trainer state are restored afterwards. None under `fast_dev_run`.
        """
        from fulmen.callbacks.lr_finder import LearningRateFinder
        from fulmen.tuner.lr_finder import check_lr_find_arguments

        if method != "fit":
            raise MisconfigurationException(
                f"Tuner.lr_find(method={method!r}) is invalid: the learning-rate finder trains, "
                "so only method='fit' works."
            )
        _check_tuner_configuration(train_dataloaders, val_dataloaders, dataloaders, method)
        check_lr_find_arguments(
            min_lr, max_lr, num_training, mode, early_stop_threshold, "Tuner.lr_find"
        )
        _check_not_configured(self._trainer, LearningRateFinder)
        finder = LearningRateFinder(
            min_lr=min_lr,
            max_lr=max_lr,
            num_training_steps=num_training,
            mode=mode,
            early_stop_threshold=early_stop_threshold,
            update_attr=update_attr,
            attr_name=attr_name,
        )
        self._run_with(finder, model, method, train_dataloaders, val_dataloaders, None, datamodule)
        return finder.optimal_lr

    def _run_with(
        self,
        finder: Callback,
        model: LightningModule,
        method: str,
        train_dataloaders: Any,
        val_dataloaders: Any,
        dataloaders: Any,
        datamodule: LightningDataModule | None,
    ) -> None:
        trainer = self._trainer
        finder._early_exit = True  # type: ignore[attr-defined]
        trainer.callbacks = [finder, *trainer.callbacks]
        try:
            if method == "fit":
                trainer.fit(model, train_dataloaders, val_dataloaders, datamodule)
            elif method == "validate":
                trainer.validate(model, dataloaders, datamodule=datamodule)
            elif method == "test":
                trainer.test(model, dataloaders, datamodule=datamodule)
            else:
                trainer.predict(model, dataloaders, datamodule=datamodule)
        finally:
            trainer.callbacks = [cb for cb in trainer.callbacks if cb is not finder]

    def _tune(
        self,
        model: LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        scale_batch_size_kwargs: dict[str, Any] | None = None,
        lr_find_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`Trainer.tune` of Lightning 1.x: batch size first (if asked), then learning rate."""
        from fulmen.core.datamodule import LightningDataModule
        from fulmen.utilities.seed import isolate_rng

        trainer = self._trainer
        auto_lr_find = getattr(trainer, "auto_lr_find", False)
        auto_scale_batch_size = getattr(trainer, "auto_scale_batch_size", False)
        if isinstance(train_dataloaders, LightningDataModule):
            datamodule, train_dataloaders = train_dataloaders, None
        if datamodule is not None and (
            train_dataloaders is not None or val_dataloaders is not None
        ):
            raise MisconfigurationException(
                "Trainer.tune got both dataloaders and a datamodule. Pass one or the other."
            )
        result: dict[str, Any] = {}
        if not auto_lr_find and not auto_scale_batch_size:
            rank_zero_warn(
                "`trainer.tune()` has nothing to do: neither `Trainer(auto_lr_find=...)` nor "
                "`Trainer(auto_scale_batch_size=...)` is set. Set one, or call "
                "`fulmen.tuner.Tuner(trainer).lr_find(model)` / `.scale_batch_size(model)`."
            )
            return result
        # As in Lightning 1.x, tuning leaves the random state as it found it.
        with isolate_rng():
            if auto_scale_batch_size:
                kwargs = dict(scale_batch_size_kwargs or {})
                if isinstance(auto_scale_batch_size, str):
                    kwargs.setdefault("mode", auto_scale_batch_size)
                result["scale_batch_size"] = self.scale_batch_size(
                    model, train_dataloaders, val_dataloaders, dataloaders, datamodule, **kwargs
                )
            if auto_lr_find:
                kwargs = dict(lr_find_kwargs or {})
                if isinstance(auto_lr_find, str):
                    kwargs.setdefault("attr_name", auto_lr_find)
                kwargs.setdefault("update_attr", True)
                result["lr_find"] = self.lr_find(
                    model, train_dataloaders, val_dataloaders, dataloaders, datamodule, **kwargs
                )
        return result


def check_tuning_flags(auto_lr_find: Any, auto_scale_batch_size: Any) -> None:
    """Raise unless the Lightning 1.x `Trainer(auto_lr_find=, auto_scale_batch_size=)` values work.

    Example:
        >>> check_tuning_flags(True, "binsearch")
        >>> check_tuning_flags(False, "fast")
        Traceback (most recent call last):
        ...
        ValueError: Trainer(auto_scale_batch_size='fast') is invalid: expected a bool, 'power' or 'binsearch'.
    """
    if not isinstance(auto_lr_find, (bool, str)) or auto_lr_find == "":
        raise ValueError(
            f"Trainer(auto_lr_find={auto_lr_find!r}) is invalid: expected a bool, or the name of "
            "the model attribute that holds the learning rate (a non-empty str)."
        )
    if not isinstance(auto_scale_batch_size, bool) and auto_scale_batch_size not in (
        "power",
        "binsearch",
    ):
        raise ValueError(
            f"Trainer(auto_scale_batch_size={auto_scale_batch_size!r}) is invalid: expected a "
            "bool, 'power' or 'binsearch'."
        )


def _check_tuner_configuration(
    train_dataloaders: Any, val_dataloaders: Any, dataloaders: Any, method: str
) -> None:
    if method not in _METHODS:
        raise ValueError(f"Tuner(method={method!r}) is invalid: expected one of {_METHODS}.")
    if method == "fit" and dataloaders is not None:
        raise MisconfigurationException(
            "Tuner with method='fit' takes `train_dataloaders` and `val_dataloaders`, not "
            "`dataloaders` (which is for method='validate', 'test' or 'predict')."
        )
    if method != "fit" and (train_dataloaders is not None or val_dataloaders is not None):
        raise MisconfigurationException(
            f"Tuner with method={method!r} takes `dataloaders`, not `train_dataloaders` or "
            "`val_dataloaders` (which are for method='fit')."
        )


def _check_not_configured(trainer: Trainer, kind: type) -> None:
    if any(isinstance(cb, kind) for cb in trainer.callbacks):
        raise ValueError(
            f"The trainer already has a `{kind.__name__}` callback, which tunes during the run "
            "itself. Remove it to use the Tuner, or keep it and call `trainer.fit` instead."
        )
