"""`DeviceStatsMonitor`: log the accelerator's device stats (and the CPU's) around each batch."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import torch

from fulmen.accelerators.cpu import CPUAccelerator
from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import STEP_OUTPUT

__all__ = ["DeviceStatsMonitor"]


def _psutil_available() -> bool:
    return importlib.util.find_spec("psutil") is not None


class DeviceStatsMonitor(Callback):
    """Log `trainer.accelerator.get_device_stats()` before and after each batch on logging steps.

    Keys are `DeviceStatsMonitor.<hook>/<stat>`, for instance
    `DeviceStatsMonitor.on_train_batch_start/cpu_percent` (the logger's `group_separator`
    joins the two parts). Training batches are logged when `trainer.log_every_n_steps` divides
    the step they train, validation and test batches every `log_every_n_steps` batches; the
    x-axis is the trainer's step, as for `self.log`.

    Args:
        cpu_stats: True also logs CPU stats (needs `psutil`) on other devices; False logs nothing
            on the CPU; None logs the device's own stats, which on the CPU are CPU stats.

    Example:
        >>> monitor = DeviceStatsMonitor(cpu_stats=False)
        >>> # Trainer(accelerator="cuda", callbacks=[monitor]).fit(model) logs CUDA memory stats
        >>> # such as "DeviceStatsMonitor.on_train_batch_end/allocated_bytes.all.current".
    """

    def __init__(self, cpu_stats: bool | None = None) -> None:
        self._cpu_stats = cpu_stats
        # The step the current training batch trains: the x-axis until the next batch starts,
        # validation in between included (the optimizer steps before on_train_batch_end).
        self._batch_step: int | None = None
        self._eval_batches = 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not trainer.loggers:
            raise MisconfigurationException(
                "Cannot use `DeviceStatsMonitor` callback with `Trainer(logger=False)`: it logs "
                "to the trainer's loggers. Pass a logger or remove the callback."
            )
        on_cpu = trainer.strategy.root_device.type == "cpu"
        needs_psutil = self._cpu_stats is True or (self._cpu_stats is None and on_cpu)
        if needs_psutil and not _psutil_available():
            raise ModuleNotFoundError(
                f"DeviceStatsMonitor(cpu_stats={self._cpu_stats!r}) logs CPU stats, which needs "
                "the `psutil` package. Run `pip install psutil`, or pass `cpu_stats=False`."
            )
        self._batch_step = None

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_step = trainer.global_step
        self._log_stats(trainer, "on_train_batch_start", self._batch_step + 1, self._batch_step)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step if self._batch_step is None else self._batch_step
        self._log_stats(trainer, "on_train_batch_end", step + 1, step)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._eval_batches = 0

    def on_validation_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._eval_batches += 1
        self._log_eval_stats(trainer, "on_validation_batch_start")

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._log_eval_stats(trainer, "on_validation_batch_end")

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._eval_batches = 0

    def on_test_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._eval_batches += 1
        self._log_eval_stats(trainer, "on_test_batch_start")

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._log_eval_stats(trainer, "on_test_batch_end")

    def _log_eval_stats(self, trainer: Trainer, hook: str) -> None:
        # Validation inside fit is plotted at the step of the training batch it follows.
        in_fit = trainer.state.fn == "fit" and not trainer.sanity_checking
        step = self._batch_step if in_fit and self._batch_step is not None else trainer.global_step
        self._log_stats(trainer, hook, self._eval_batches, step)

    def _log_stats(self, trainer: Trainer, hook: str, count: int, step: int) -> None:
        """Log the stats under `DeviceStatsMonitor.<hook>/` if `count` falls on a logging step."""
        every_n = trainer.log_every_n_steps
        if every_n == 0 or (count % every_n != 0 and not trainer.should_stop):
            return
        device = trainer.strategy.root_device
        if self._cpu_stats is False and device.type == "cpu":
            return
        stats = dict(trainer.accelerator.get_device_stats(device))
        if self._cpu_stats and device.type != "cpu":
            stats.update(CPUAccelerator().get_device_stats(torch.device("cpu")))
        prefix = f"{type(self).__qualname__}.{hook}"
        for logger in trainer.loggers:
            separator = logger.group_separator
            logger.log_metrics({f"{prefix}{separator}{k}": v for k, v in stats.items()}, step=step)
