"""Trainer: store and check arguments, build the parts, run fit/validate/test/predict.

`__init__` only stores and checks. `_run` is the shape every entry point shares: attach the
model and data, call the setup hooks, run the loop (`loop.py`, `eval_loop.py`), tear down.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from fulmen.callbacks.callback import Callback
from fulmen.core.datamodule import LightningDataModule
from fulmen.core.module import LightningModule
from fulmen.trainer import arguments as args_
from fulmen.trainer.call import (
    call_hook,
)
from fulmen.trainer.logging import Results
from fulmen.trainer.loop import automatic_optimizer_step
from fulmen.trainer.run import run_stage
from fulmen.trainer.state import RunningStage, TrainerFn, TrainerState
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info

if TYPE_CHECKING:
    from fulmen.accelerators import Accelerator
    from fulmen.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint, ProgressBar
    from fulmen.loggers.logger import Logger
    from fulmen.plugins.precision import Precision
    from fulmen.profilers.profiler import Profiler
    from fulmen.strategies.strategy import Strategy
    from fulmen.trainer.data import DataSource
    from fulmen.utilities.types import LRSchedulerConfig

__all__ = ["Trainer"]


class Trainer:
    """Run the training, evaluation and prediction loops for a LightningModule.

    Example:
        >>> from fulmen.demos.boring_classes import BoringModel
        >>> trainer = Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1,
        ...                   logger=False, enable_checkpointing=False, enable_progress_bar=False,
        ...                   enable_model_summary=False)
        >>> trainer.fit(BoringModel())
        >>> trainer.current_epoch, trainer.global_step
        (1, 2)
    """

    def __init__(
        self,
        *,
        accelerator: str | Accelerator = "auto",
        strategy: str | Strategy = "auto",
        devices: list[int] | str | int = "auto",
        num_nodes: int = 1,
        precision: int | str | None = None,
        logger: Logger | list[Logger] | bool | None = None,
        callbacks: list[Callback] | Callback | None = None,
        fast_dev_run: int | bool = False,
        max_epochs: int | None = None,
        min_epochs: int | None = None,
        max_steps: int = -1,
        min_steps: int | None = None,
        max_time: str | timedelta | dict[str, int] | None = None,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        overfit_batches: int | float = 0.0,
        val_check_interval: int | float | str | timedelta | dict[str, int] | None = None,
        check_val_every_n_epoch: int | None = 1,
        num_sanity_val_steps: int | None = None,
        log_every_n_steps: int | None = None,
        enable_checkpointing: bool | None = None,
        enable_progress_bar: bool | None = None,
        enable_model_summary: bool | None = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: int | float | None = None,
        gradient_clip_algorithm: str | None = None,
        deterministic: bool | str | None = None,
        benchmark: bool | None = None,
        inference_mode: bool = True,
        use_distributed_sampler: bool = True,
        profiler: Profiler | str | None = None,
        detect_anomaly: bool = False,
        barebones: bool = False,
        plugins: Any = None,
        sync_batchnorm: bool = False,
        reload_dataloaders_every_n_epochs: int = 0,
        default_root_dir: str | Path | None = None,
        enable_autolog_hparams: bool = True,
        model_registry: str | None = None,
        auto_lr_find: bool | str = False,
        auto_scale_batch_size: bool | str = False,
        **removed: Any,
    ) -> None:
        for name in removed:
            hint = args_.REMOVED_ARGUMENTS.get(name)
            if hint is None:
                raise TypeError(f"Trainer.__init__() got an unexpected keyword argument {name!r}.")
            raise TypeError(
                f"Trainer({name}=...) was removed in Lightning 2.0 and is not accepted by "
                f"fulmen. Use {hint} instead."
            )
        if model_registry is not None:
            raise MisconfigurationException(
                f"Trainer(model_registry={model_registry!r}): Lightning's model registry is a "
                "cloud service that fulmen does not connect to."
            )
        # -------- simple checks (each raises naming the argument)
        self.fast_dev_run: int | bool = fast_dev_run
        fdr = args_.check_fast_dev_run(fast_dev_run)
        args_.check_scalars(
            max_epochs=max_epochs,
            min_epochs=min_epochs,
            max_steps=max_steps,
            min_steps=min_steps,
            check_val_every_n_epoch=check_val_every_n_epoch,
            num_sanity_val_steps=num_sanity_val_steps,
            log_every_n_steps=log_every_n_steps,
            accumulate_grad_batches=accumulate_grad_batches,
            reload_dataloaders_every_n_epochs=reload_dataloaders_every_n_epochs,
            gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm,
            deterministic=deterministic,
            overfit_batches=overfit_batches,
            inference_mode=inference_mode,
            detect_anomaly=detect_anomaly,
            barebones=barebones,
            sync_batchnorm=sync_batchnorm,
            use_distributed_sampler=use_distributed_sampler,
            enable_autolog_hparams=enable_autolog_hparams,
        )
        args_.check_optional_flags(
            enable_checkpointing=enable_checkpointing,
            enable_progress_bar=enable_progress_bar,
            enable_model_summary=enable_model_summary,
            benchmark=benchmark,
        )
        root_dir = args_.check_default_root_dir(default_root_dir)
        if barebones:
            args_.check_barebones(
                enable_checkpointing=enable_checkpointing,
                enable_progress_bar=enable_progress_bar,
                enable_model_summary=enable_model_summary,
                logger=logger or None,
                profiler=profiler,
                detect_anomaly=detect_anomaly or None,
                num_sanity_val_steps=num_sanity_val_steps or None,
                fast_dev_run=fast_dev_run or None,
            )
            enable_checkpointing = enable_progress_bar = enable_model_summary = False
            logger = False
            num_sanity_val_steps = 0

        # -------- stored settings
        self.barebones = barebones
        self.max_epochs = max_epochs
        self.min_epochs = min_epochs
        self.max_steps = max_steps
        self.min_steps = min_steps
        self.max_time = args_.parse_duration("max_time", max_time)
        self.limit_train_batches = args_.check_limit("limit_train_batches", limit_train_batches)
        self.limit_val_batches = args_.check_limit("limit_val_batches", limit_val_batches)
        self.limit_test_batches = args_.check_limit("limit_test_batches", limit_test_batches)
        self.limit_predict_batches = args_.check_limit(
            "limit_predict_batches", limit_predict_batches
        )
        self.overfit_batches = overfit_batches
        self.val_check_interval = args_.check_val_check_interval(
            val_check_interval, check_val_every_n_epoch
        )
        self.check_val_every_n_epoch = check_val_every_n_epoch
        self.num_sanity_val_steps = 2 if num_sanity_val_steps is None else num_sanity_val_steps
        self.log_every_n_steps = 50 if log_every_n_steps is None else log_every_n_steps
        self.accumulate_grad_batches = accumulate_grad_batches
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = (gradient_clip_algorithm or "norm").lower()
        self.deterministic = deterministic
        self.benchmark = benchmark
        self._inference_mode = inference_mode
        self.use_distributed_sampler = use_distributed_sampler
        self.detect_anomaly = detect_anomaly
        self.reload_dataloaders_every_n_epochs = reload_dataloaders_every_n_epochs
        self.enable_autolog_hparams = enable_autolog_hparams
        from fulmen.tuner.tuning import check_tuning_flags

        # Lightning 1.x tuning flags, acted on by `tune()` only (as in 1.x, `fit` ignores them).
        check_tuning_flags(auto_lr_find, auto_scale_batch_size)
        self.auto_lr_find = auto_lr_find
        self.auto_scale_batch_size = auto_scale_batch_size
        self._default_root_dir = root_dir if root_dir is not None else os.getcwd()
        if fdr:
            # fast_dev_run: a smoke test of every loop, with nothing written anywhere.
            self.max_steps = fdr
            self.max_epochs = 1
            self.num_sanity_val_steps = 0
            self.limit_train_batches = self.limit_val_batches = fdr
            self.limit_test_batches = self.limit_predict_batches = fdr
            self.val_check_interval = 1.0
            self.check_val_every_n_epoch = 1
            rank_zero_info(
                f"Running in `fast_dev_run` mode: will run the requested loop using {fdr} batch(es)."
            )
        if overfit_batches:
            self.limit_train_batches = self.limit_val_batches = overfit_batches

        # -------- parts
        plugins_ = args_.Plugins(plugins)
        self.accelerator = args_.select_accelerator(accelerator)
        device_type = {"CUDAAccelerator": "cuda", "MPSAccelerator": "mps"}.get(
            type(self.accelerator).__name__, "cpu"
        )
        precision_plugin = plugins_.precision or args_.select_precision(precision, device_type)
        self.strategy: Strategy = args_.select_strategy(
            strategy,
            self.accelerator,
            devices,
            num_nodes,
            precision_plugin,
            plugins_,
            sync_batchnorm,
        )
        self.num_nodes = num_nodes
        self.sync_batchnorm = sync_batchnorm
        self.callbacks: list[Callback] = args_.build_callbacks(
            callbacks,
            enable_checkpointing is not False,
            enable_progress_bar is not False,
            enable_model_summary is not False and not fdr,
            self.max_time,
        )
        self._loggers = args_.build_loggers(logger, self._default_root_dir, active=True)
        if fdr and self._loggers:
            from fulmen.loggers.logger import DummyLogger

            self._loggers = [DummyLogger()]
        self.profiler: Profiler = args_.build_profiler(profiler, active=not barebones)
        from fulmen.profilers import PassThroughProfiler

        self._profiling = not isinstance(self.profiler, PassThroughProfiler)

        # -------- run state
        self.state = TrainerState()
        self._results = Results(self)
        self._eval_results = Results(self)
        self._eval_results.share_views(self._results)
        self._train_results = self._results
        self._hook_cache: dict[Any, Any] = {}
        self._lightning_module: LightningModule | None = None
        self.datamodule: LightningDataModule | None = None
        self.optimizers: list[Optimizer] = []
        self.lr_scheduler_configs: list[LRSchedulerConfig] = []
        self._data: DataSource | None = None
        self.num_training_batches: int | float = float("inf")
        self.num_sanity_val_batches: list[int] = []
        self.num_val_batches: list[int] = []
        self.num_test_batches: list[int] = []
        self.num_predict_batches: list[int] = []
        self.val_check_batch: int | float = float("inf")
        self.is_last_batch = False
        self.interrupted = False
        self.received_sigterm = False
        self._interrupt_requested = False  # a first Ctrl+C during fit: stop after the batch
        self._requeue: Any = None  # the SLURM environment, once its requeue signal arrived
        self.predict_predictions: list[list[Any]] = []
        self.predict_batch_indices: list[list[list[int]]] = []
        self._ckpt_path: str | None = None
        self._user_ckpt_path: str | None = None
        self._fit_started = False
        self._resume_requested = False
        self._resume_from_last = False  # fit(ckpt_path="last"): continue a run that may have died
        self._fit_start_time = 0.0
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=deterministic == "warn")
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if torch.backends.cudnn.is_available():  # type: ignore[no-untyped-call]
            if benchmark is not None:
                torch.backends.cudnn.benchmark = benchmark
            elif deterministic:
                torch.backends.cudnn.benchmark = False

    # ================================================================== entry points

    def fit(
        self,
        model: LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        ckpt_path: str | Path | None = None,
        weights_only: bool | None = None,
    ) -> None:
        """Train `model` on the train dataloader(s), validating as configured."""
        if isinstance(train_dataloaders, LightningDataModule):
            datamodule, train_dataloaders = train_dataloaders, None
        if datamodule is not None and (
            train_dataloaders is not None or val_dataloaders is not None
        ):
            raise MisconfigurationException(
                "Trainer.fit got both dataloaders and a datamodule. Pass one or the other."
            )
        self._check_model(model, "fit")
        from fulmen.trainer.data import DataSource

        self._data = DataSource(
            self, model, datamodule, train=train_dataloaders, val=val_dataloaders
        )
        run_stage(self, model, datamodule, TrainerFn.FITTING, ckpt_path, weights_only)

    def validate(
        self,
        model: LightningModule | None = None,
        dataloaders: Any = None,
        ckpt_path: str | Path | None = None,
        verbose: bool = True,
        datamodule: LightningDataModule | None = None,
        weights_only: bool | None = None,
    ) -> list[dict[str, float]]:
        """Run one validation epoch; return one dict of epoch metrics per dataloader."""
        return self._evaluate(
            TrainerFn.VALIDATING, model, dataloaders, ckpt_path, verbose, datamodule, weights_only
        )

    def test(
        self,
        model: LightningModule | None = None,
        dataloaders: Any = None,
        ckpt_path: str | Path | None = None,
        verbose: bool = True,
        datamodule: LightningDataModule | None = None,
        weights_only: bool | None = None,
    ) -> list[dict[str, float]]:
        """Run one test epoch; return one dict of epoch metrics per dataloader."""
        return self._evaluate(
            TrainerFn.TESTING, model, dataloaders, ckpt_path, verbose, datamodule, weights_only
        )

    def predict(
        self,
        model: LightningModule | None = None,
        dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        return_predictions: bool | None = None,
        ckpt_path: str | Path | None = None,
        weights_only: bool | None = None,
    ) -> list[Any] | list[list[Any]] | None:
        """Run `predict_step` over the predict dataloader(s) and return the outputs."""
        model, datamodule, dataloaders = self._resolve_eval_inputs(
            model, dataloaders, datamodule, "predict", ckpt_path
        )
        from fulmen.trainer.data import DataSource

        self._return_predictions = True if return_predictions is None else return_predictions
        self._data = DataSource(self, model, datamodule, predict=dataloaders)
        result = run_stage(self, model, datamodule, TrainerFn.PREDICTING, ckpt_path, weights_only)
        return result  # type: ignore[no-any-return]

    def _evaluate(
        self,
        fn: TrainerFn,
        model: LightningModule | None,
        dataloaders: Any,
        ckpt_path: str | Path | None,
        verbose: bool,
        datamodule: LightningDataModule | None,
        weights_only: bool | None,
    ) -> list[dict[str, float]]:
        model, datamodule, dataloaders = self._resolve_eval_inputs(
            model, dataloaders, datamodule, str(fn), ckpt_path
        )
        from fulmen.trainer.data import DataSource

        key = "val" if fn == TrainerFn.VALIDATING else "test"
        self._data = DataSource(self, model, datamodule, **{key: dataloaders})
        self._verbose_eval = verbose
        result = run_stage(self, model, datamodule, fn, ckpt_path, weights_only)
        return result  # type: ignore[no-any-return]

    def _resolve_eval_inputs(
        self,
        model: LightningModule | None,
        dataloaders: Any,
        datamodule: LightningDataModule | None,
        name: str,
        ckpt_path: str | Path | None = None,
    ) -> tuple[LightningModule, LightningDataModule | None, Any]:
        if isinstance(dataloaders, LightningDataModule):
            datamodule, dataloaders = dataloaders, None
        if datamodule is not None and dataloaders is not None:
            raise MisconfigurationException(
                f"Trainer.{name} got both dataloaders and a datamodule. Pass one or the other."
            )
        if model is None:
            model = self._lightning_module
            if model is None:
                raise MisconfigurationException(
                    f"Trainer.{name}() needs a model: pass one, or call it after `fit(model)`."
                )
            if datamodule is None and dataloaders is None:
                datamodule = self.datamodule
            callback = self.checkpoint_callback
            best = getattr(callback, "best_model_path", "") if callback is not None else ""
            if self._fit_started and best and self._user_ckpt_path is None and ckpt_path is None:
                # As in Lightning: without a model, evaluate the best checkpoint of the last fit.
                rank_zero_info(
                    f"Trainer.{name}() got no model: using the best checkpoint of the last fit, "
                    f"{best}. Pass ckpt_path= to choose another."
                )
                self._user_ckpt_path = str(best)
        if not isinstance(model, LightningModule):
            raise TypeError(
                f"Trainer.{name}(model=...) expects a fulmen.LightningModule, got {type(model).__name__}."
            )
        return model, datamodule, dataloaders

    def _check_model(self, model: Any, name: str) -> None:
        if not isinstance(model, LightningModule):
            raise TypeError(
                f"Trainer.{name}(model=...) expects a fulmen.LightningModule, got "
                f"{type(model).__name__}. Subclass fulmen.LightningModule (an nn.Module)."
            )

    # ================================================================== the shared run

    def _run_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Backward with its hooks: used by the loop and by `manual_backward`."""
        call_hook(self, "on_before_backward", loss)
        self.strategy.backward(loss, *args, **kwargs)
        call_hook(self, "on_after_backward")

    def _optimizer_step(self, optimizer: Optimizer, closure: Any, **kwargs: Any) -> Any:
        """`LightningOptimizer.step`: hooks, precision, then count one optimizer step."""
        if self.lightning_module.automatic_optimization:
            return automatic_optimizer_step(self, optimizer, closure, **kwargs)

        def wrapped() -> Any:
            result = closure() if closure is not None else None
            call_hook(self, "on_before_optimizer_step", optimizer)
            return result

        output = self.strategy.precision_plugin.optimizer_step(optimizer, wrapped, **kwargs)
        self.state.global_step += 1
        return output

    # ================================================================== checkpoints

    def save_checkpoint(
        self,
        filepath: str | Path,
        weights_only: bool | None = None,
        storage_options: Any | None = None,
    ) -> None:
        """Save the full training state (or only the weights) to `filepath` (any fsspec URL)."""
        from fulmen.core.saving import keep_storable_hparams
        from fulmen.trainer.checkpoint import dump_checkpoint

        if self._lightning_module is None:
            raise MisconfigurationException(
                "Trainer.save_checkpoint needs a model: call it during or after fit/validate/test."
            )
        checkpoint = dump_checkpoint(self, bool(weights_only))
        for owner in (self._lightning_module, self.datamodule):
            # Every checkpoint must load with `weights_only=True`; `save_hyperparameters` warned.
            if owner is not None and owner.CHECKPOINT_HYPER_PARAMS_KEY in checkpoint:
                key = owner.CHECKPOINT_HYPER_PARAMS_KEY
                checkpoint[key] = keep_storable_hparams(owner, checkpoint[key])
        self.strategy.save_checkpoint(
            checkpoint, os.fspath(filepath), storage_options=storage_options
        )
        self.strategy.barrier("Trainer.save_checkpoint")

    @property
    def ckpt_path(self) -> str | None:
        """The checkpoint the current or last run was restored from."""
        return self._ckpt_path

    @ckpt_path.setter
    def ckpt_path(self, path: str | Path | None) -> None:
        self._ckpt_path = None if path is None else os.fspath(path)
        self._user_ckpt_path = self._ckpt_path

    # ================================================================== properties

    @property
    def lightning_module(self) -> LightningModule:
        return self._lightning_module  # type: ignore[return-value]

    @property
    def model(self) -> torch.nn.Module | None:
        return self.strategy.model

    @property
    def current_epoch(self) -> int:
        return self.state.epoch

    @property
    def global_step(self) -> int:
        return self.state.global_step

    @property
    def should_stop(self) -> bool:
        return self.state.should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self.state.should_stop = value

    @property
    def callback_metrics(self) -> dict[str, Tensor]:
        return self._results.callback_metrics

    @property
    def logged_metrics(self) -> dict[str, Tensor]:
        return self._results.logged

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        return self._results.progress_bar_metrics

    @property
    def default_root_dir(self) -> str:
        return self._default_root_dir

    @property
    def loggers(self) -> list[Logger]:
        return self._loggers

    @loggers.setter
    def loggers(self, loggers: list[Logger] | None) -> None:
        self._loggers = list(loggers or [])

    @property
    def logger(self) -> Logger | None:
        return self._loggers[0] if self._loggers else None

    @logger.setter
    def logger(self, logger: Logger | None) -> None:
        self._loggers = [logger] if logger is not None else []

    @property
    def log_dir(self) -> str:
        """The first logger's folder, else `default_root_dir`."""
        logger = self.logger
        if logger is None:
            return self.default_root_dir
        directory = logger.log_dir or logger.save_dir
        return directory if directory is not None else self.default_root_dir

    @property
    def _profiler_rank(self) -> int | None:
        # Reports get a rank suffix only when several processes write them.
        return self.local_rank if self.world_size > 1 else None

    @property
    def precision_plugin(self) -> Precision:
        return self.strategy.precision_plugin

    @property
    def precision(self) -> str:
        return self.strategy.precision_plugin.precision

    @property
    def is_global_zero(self) -> bool:
        return self.strategy.is_global_zero

    @property
    def global_rank(self) -> int:
        return self.strategy.global_rank

    @property
    def local_rank(self) -> int:
        return self.strategy.local_rank

    @property
    def node_rank(self) -> int:
        return self.strategy.node_rank

    @property
    def world_size(self) -> int:
        return self.strategy.world_size

    @property
    def num_devices(self) -> int:
        return len(self.device_ids)

    @property
    def device_ids(self) -> list[int]:
        devices = getattr(self.strategy, "parallel_devices", None) or [self.strategy.root_device]
        return [d.index or 0 if d.type != "cpu" else i for i, d in enumerate(devices)]

    @property
    def distributed_sampler_kwargs(self) -> dict[str, Any] | None:
        return self.strategy.distributed_sampler_kwargs

    @property
    def scaler(self) -> Any:
        return getattr(self.precision_plugin, "scaler", None)

    @property
    def training(self) -> bool:
        return self.state.stage == RunningStage.TRAINING

    @property
    def sanity_checking(self) -> bool:
        return self.state.stage == RunningStage.SANITY_CHECKING

    @property
    def validating(self) -> bool:
        return self.state.stage == RunningStage.VALIDATING

    @property
    def testing(self) -> bool:
        return self.state.stage == RunningStage.TESTING

    @property
    def predicting(self) -> bool:
        return self.state.stage == RunningStage.PREDICTING

    @property
    def evaluating(self) -> bool:
        return self.state.stage is not None and self.state.stage.evaluating

    @property
    def enable_validation(self) -> bool:
        return self._data is not None and self._data.has_val()

    @property
    def estimated_stepping_batches(self) -> int | float:
        """Optimizer steps the whole fit will take (accounts for limits and accumulation)."""
        from fulmen.trainer.data import estimated_stepping_batches

        return estimated_stepping_batches(self)

    @property
    def checkpoint_callbacks(self) -> list[Checkpoint]:
        from fulmen.callbacks import Checkpoint

        return [cb for cb in self.callbacks if isinstance(cb, Checkpoint)]

    @property
    def checkpoint_callback(self) -> ModelCheckpoint | None:
        from fulmen.callbacks import ModelCheckpoint

        found = [cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)]
        return found[0] if found else None

    @property
    def early_stopping_callbacks(self) -> list[EarlyStopping]:
        from fulmen.callbacks import EarlyStopping

        return [cb for cb in self.callbacks if isinstance(cb, EarlyStopping)]

    @property
    def early_stopping_callback(self) -> EarlyStopping | None:
        found = self.early_stopping_callbacks
        return found[0] if found else None

    @property
    def progress_bar_callback(self) -> ProgressBar | None:
        from fulmen.callbacks import ProgressBar

        found = [cb for cb in self.callbacks if isinstance(cb, ProgressBar)]
        return found[0] if found else None

    @property
    def lr_scheduler_configs_by_interval(self) -> dict[str, list[LRSchedulerConfig]]:
        return {
            interval: [c for c in self.lr_scheduler_configs if c.interval == interval]
            for interval in ("step", "epoch")
        }

    @property
    def train_dataloader(self) -> Any:
        return self._data.train_loader if self._data is not None else None

    @property
    def val_dataloaders(self) -> Any:
        return _unwrap(self._data.val_loaders) if self._data is not None else None

    @property
    def test_dataloaders(self) -> Any:
        return _unwrap(self._data.test_loaders) if self._data is not None else None

    @property
    def predict_dataloaders(self) -> Any:
        return _unwrap(self._data.predict_loaders) if self._data is not None else None

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print on global rank zero only."""
        if self.is_global_zero:
            print(*args, **kwargs)

    @contextmanager
    def init_module(self, empty_init: bool | None = None) -> Generator[None]:
        """Create the module's tensors directly on the training device and in its precision."""
        with torch.device(self.strategy.root_device), self.precision_plugin.module_init_context():
            yield

    def tune(
        self,
        model: LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        scale_batch_size_kwargs: dict[str, Any] | None = None,
        lr_find_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run the tuners that `auto_scale_batch_size` and `auto_lr_find` ask for (Lightning 1.x).

        The batch size is scaled first, then the learning rate found; the result has a key for
        each tuner that ran: `{"scale_batch_size": int, "lr_find": _LRFinder}`. With neither
        flag set it warns and returns `{}`. New code calls `fulmen.tuner.Tuner` directly.

        Example:
            >>> import torch
            >>> from fulmen.demos.boring_classes import BoringModel
            >>> class Model(BoringModel):
            ...     lr = 0.1
            ...     def configure_optimizers(self):
            ...         return torch.optim.SGD(self.parameters(), lr=self.lr)
            >>> trainer = Trainer(auto_lr_find=True, max_epochs=1, logger=False,
            ...                   enable_checkpointing=False, enable_progress_bar=False)
            >>> kwargs = {"num_training": 20, "early_stop_threshold": None}
            >>> sorted(trainer.tune(Model(), lr_find_kwargs=kwargs))
            ['lr_find']
        """
        from fulmen.tuner.tuning import Tuner

        return Tuner(self)._tune(
            model,
            train_dataloaders,
            val_dataloaders,
            dataloaders,
            datamodule,
            scale_batch_size_kwargs,
            lr_find_kwargs,
        )

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"'Trainer' object has no attribute {name!r}")


def _unwrap(loaders: list[Any] | None) -> Any:
    if not loaders:
        return None
    return loaders[0] if len(loaders) == 1 else loaders
