"""Progress bars and the small shipped callbacks through the public Trainer API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import fulmen
from fulmen.callbacks import (
    BasePredictionWriter,
    GradientAccumulationScheduler,
    LambdaCallback,
    LearningRateMonitor,
    Timer,
    TQDMProgressBar,
)
from fulmen.demos.boring_classes import BoringModel
from fulmen.loggers.logger import Logger
from fulmen.utilities.exceptions import MisconfigurationException

QUIET: dict[str, Any] = dict(enable_model_summary=False, enable_checkpointing=False, logger=False)


class LoggingModel(BoringModel):
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        output: Any = super().training_step(batch, batch_idx)
        self.log("train_loss", output["loss"], prog_bar=True)
        return output

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        output: Any = super().validation_step(batch, batch_idx)
        self.log("val_loss", output["x"], prog_bar=True)
        return output


class RecordingLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int | None, dict[str, Any]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 7

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def test_tqdm_bar_shows_epochs_validation_and_prog_bar_metrics(tmp_path: Path, capsys: Any) -> None:
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=4,
        limit_val_batches=2,
        callbacks=[TQDMProgressBar()],
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=RecordingLogger(),
    )
    trainer.fit(LoggingModel())
    out = capsys.readouterr().out
    assert "Sanity Checking DataLoader 0: 100%" in out
    assert "Validation DataLoader 0: 100%" in out
    assert "Epoch 0: 100%|██████████| 4/4" in out
    assert "Epoch 1: 100%|██████████| 4/4" in out
    assert "v_num=7, train_loss=" in out
    assert ", val_loss=" in out


def test_test_and_predict_show_their_bars(tmp_path: Path, capsys: Any) -> None:
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, limit_test_batches=3, limit_predict_batches=2, **QUIET
    )
    trainer.test(BoringModel(), verbose=False)
    trainer.predict(BoringModel())
    out = capsys.readouterr().out
    assert "Testing DataLoader 0: 100%|██████████| 3/3" in out
    assert "Predicting DataLoader 0: 100%|██████████| 2/2" in out


def test_disabled_progress_bar_prints_nothing(tmp_path: Path, capsys: Any) -> None:
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
        enable_progress_bar=False, **QUIET,
    )  # fmt: skip
    trainer.fit(LoggingModel())
    assert "Epoch" not in capsys.readouterr().out
    assert trainer.progress_bar_callback is None


def test_learning_rate_monitor_logs_each_step_at_the_global_step(tmp_path: Path) -> None:
    class ScheduledModel(BoringModel):
        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
            }

    logger = RecordingLogger()
    monitor = LearningRateMonitor(log_momentum=True)
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=0,
        log_every_n_steps=1, logger=logger, callbacks=[monitor], enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(ScheduledModel())
    lr_calls = [(step, metrics) for step, metrics in logger.calls if "lr-SGD" in metrics]
    assert lr_calls == [
        (0, {"lr-SGD": 0.1, "lr-SGD-momentum": 0.9}),
        (1, {"lr-SGD": 0.05, "lr-SGD-momentum": 0.9}),
        (2, {"lr-SGD": 0.025, "lr-SGD-momentum": 0.9}),
    ]
    assert monitor.lrs == {"lr-SGD": [0.1, 0.05, 0.025]}


def test_learning_rate_monitor_needs_a_logger(tmp_path: Path) -> None:
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, max_epochs=1, callbacks=[LearningRateMonitor()],
        enable_progress_bar=False, **QUIET,
    )  # fmt: skip
    with pytest.raises(MisconfigurationException, match="no logger"):
        trainer.fit(BoringModel())


def test_timer_stops_training_when_the_budget_is_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter(range(0, 10_000, 10))  # each reading of the timer's clock is 10 s later
    monkeypatch.setattr("fulmen.callbacks.timer.monotonic", lambda: float(next(ticks)))
    timer = Timer(duration={"seconds": 35}, verbose=False)
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, max_epochs=5, limit_train_batches=10, limit_val_batches=0,
        callbacks=[timer], enable_progress_bar=False, **QUIET,
    )  # fmt: skip
    trainer.fit(BoringModel())
    assert trainer.global_step == 4
    assert timer.time_elapsed("train") >= 35


def test_max_time_adds_a_timer(tmp_path: Path) -> None:
    trainer = fulmen.Trainer(default_root_dir=tmp_path, max_time={"hours": 1}, **QUIET)
    timers = [callback for callback in trainer.callbacks if isinstance(callback, Timer)]
    assert len(timers) == 1 and timers[0].time_remaining() == 3600


def test_gradient_accumulation_scheduler_changes_the_steps_per_epoch(tmp_path: Path) -> None:
    steps: list[int] = []

    class RecordSteps(fulmen.Callback):
        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            steps.append(trainer.global_step)

    record = RecordSteps()
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, max_epochs=3, limit_train_batches=4, limit_val_batches=0,
        callbacks=[GradientAccumulationScheduler({1: 2, 2: 4}), record],
        enable_progress_bar=False, **QUIET,
    )  # fmt: skip
    trainer.fit(BoringModel())
    assert steps == [4, 6, 7]
    assert trainer.accumulate_grad_batches == 1


def test_lambda_callback_runs_the_given_hooks(tmp_path: Path) -> None:
    calls: list[str] = []
    callback = LambdaCallback(
        setup=lambda trainer, module, stage: calls.append(f"setup:{stage}"),
        on_train_epoch_start=lambda trainer, module: calls.append(f"epoch:{trainer.current_epoch}"),
        on_train_epoch_end=lambda trainer, module: calls.append("epoch_end"),
        on_fit_end=lambda trainer, module: calls.append("fit_end"),
    )
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=0,
        callbacks=[callback], enable_progress_bar=False, **QUIET,
    )  # fmt: skip
    trainer.fit(BoringModel())
    assert calls == ["setup:fit", "epoch:0", "epoch_end", "epoch:1", "epoch_end", "fit_end"]


class RecordingWriter(BasePredictionWriter):
    def __init__(self, write_interval: str) -> None:
        super().__init__(write_interval)
        self.batches: list[tuple[int, int]] = []
        self.epoch_sizes: list[int] = []

    def write_on_batch_end(
        self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any, batch: Any,
        batch_idx: int, dataloader_idx: int,
    ) -> None:  # fmt: skip
        self.batches.append((batch_idx, dataloader_idx))

    def write_on_epoch_end(
        self, trainer: Any, pl_module: Any, predictions: Any, batch_indices: Any
    ) -> None:
        self.epoch_sizes.append(len(predictions))


def test_prediction_writer_writes_each_batch_and_the_epoch(tmp_path: Path) -> None:
    writer = RecordingWriter("batch_and_epoch")
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, limit_predict_batches=3, callbacks=[writer],
        enable_progress_bar=False, **QUIET,
    )  # fmt: skip
    trainer.predict(BoringModel(), return_predictions=False)
    assert writer.batches == [(0, 0), (1, 0), (2, 0)]
    assert writer.epoch_sizes == [3]


def test_prediction_writer_without_the_needed_override_fails_before_predicting(
    tmp_path: Path,
) -> None:
    class BatchOnly(BasePredictionWriter):
        def write_on_batch_end(self, *args: Any) -> None:
            raise AssertionError("must not run")

    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        callbacks=[BatchOnly("epoch")],
        enable_progress_bar=False,
        **QUIET,
    )
    with pytest.raises(MisconfigurationException, match="write_on_epoch_end"):
        trainer.predict(BoringModel())
