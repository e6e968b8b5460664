"""A loss or a monitored metric becomes NaN or infinite: the user learns where, and when asked, stops.

- `Trainer(detect_anomaly=True)`: a NaN gradient raises torch's anomaly error, whose warning
  shows the forward line that made it; a non-finite loss with finite gradients raises fulmen's
  error naming the step.
- By default fulmen warns once per run, naming the step, and training goes on. It reads the loss
  only at the batches that write metrics to a logger, where the host waits for the device anyway,
  so the check costs no synchronization on the other batches.
- `EarlyStopping(check_finite=True)` stops the run at the first non-finite value, as Lightning's.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fulmen
from fulmen.callbacks import EarlyStopping
from fulmen.callbacks.early_stopping import EarlyStoppingReason
from fulmen.loggers import CSVLogger
from tests.faults.conftest import FaultReport

QUIET: dict[str, Any] = dict(
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
    num_sanity_val_steps=0,
    limit_val_batches=0,
)


def _line_of(marker: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.endswith(f"# {marker}"))


class Model(fulmen.LightningModule):
    """Adds `bad` (NaN or inf, no gradient) to the loss of the batches `is_bad` picks."""

    def __init__(self, bad: float = math.nan, is_bad: Any = lambda batch_idx: False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.bad, self.is_bad = bad, is_bad
        self.exceptions: list[BaseException] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss: torch.Tensor = self.layer(batch[0]).pow(2).mean()
        self.log("train_loss", loss)
        if self.is_bad(batch_idx):
            loss = loss + self.bad  # the gradients stay finite
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader[Any]:
        generator = torch.Generator().manual_seed(0)
        return DataLoader(TensorDataset(torch.randn(16, 4, generator=generator)), batch_size=1)

    def on_exception(self, exception: BaseException) -> None:
        self.exceptions.append(exception)


class NanGradient(Model):
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        zero: torch.Tensor = self.layer(batch[0]) * 0  # forward:nan-gradient
        # sqrt'(0) is inf, and inf * 0 is NaN in the backward of the line above.
        return zero.sqrt().mean()


# torch's own warning carries the forward traceback; the test reads it.
def test_detect_anomaly_names_the_forward_line_of_a_nan_gradient(
    tmp_path: Path, fault_report: FaultReport
) -> None:
    model = NanGradient()
    trainer = fulmen.Trainer(default_root_dir=tmp_path, max_steps=2, detect_anomaly=True, **QUIET)
    with (
        pytest.warns(UserWarning, match="Error detected in MulBackward0") as warned,
        pytest.raises(RuntimeError, match="Function 'MulBackward0' returned nan values") as info,
    ):
        trainer.fit(model)
    forward = f'File "{__file__}", line {_line_of("forward:nan-gradient")}, in training_step'
    shown = [str(w.message) for w in warned if "Error detected in" in str(w.message)]
    ok = len(shown) == 1 and forward in shown[0] and model.exceptions == [info.value]
    fault_report.record("non-finite loss", injections=1, recovered=int(ok))
    assert forward in shown[0], shown[0]
    assert model.exceptions == [info.value]
    assert trainer.state.status == "interrupted" and trainer.global_step == 0
    assert torch.is_anomaly_enabled() is False


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_detect_anomaly_raises_naming_the_step_of_a_non_finite_loss(
    bad: float, tmp_path: Path, fault_report: FaultReport
) -> None:
    model = Model(bad, is_bad=lambda batch_idx: batch_idx == 2)
    trainer = fulmen.Trainer(default_root_dir=tmp_path, max_steps=6, detect_anomaly=True, **QUIET)
    with pytest.raises(RuntimeError) as info:
        trainer.fit(model)
    where = f"is {bad} at epoch 0, batch_idx 2 (global_step 2)"
    ok = where in str(info.value) and model.exceptions == [info.value]
    fault_report.record("non-finite loss", injections=1, recovered=int(ok))
    assert where in str(info.value)
    assert "forward pass" in str(info.value) and "gradient_clip_val" in str(info.value)
    assert model.exceptions == [info.value]
    assert trainer.state.status == "interrupted"


@pytest.mark.parametrize("bad", [math.nan, -math.inf])
def test_non_finite_loss_warns_once_naming_the_step_and_training_goes_on(
    bad: float, tmp_path: Path, fault_report: FaultReport
) -> None:
    # Non-finite from batch 5 on; the loss is read at the batches that log: 3, 7 and 11.
    model = Model(bad, is_bad=lambda batch_idx: batch_idx >= 5)
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        max_steps=12,
        log_every_n_steps=4,
        **{**QUIET, "logger": CSVLogger(tmp_path)},
    )
    with pytest.warns(UserWarning, match="The loss returned by `training_step`") as warned:
        trainer.fit(model)
    shown = [str(w.message) for w in warned if "The loss returned by" in str(w.message)]
    where = f"is {bad} at epoch 0, batch_idx 7 (global_step 7)"
    ok = len(shown) == 1 and where in shown[0] and trainer.global_step == 12
    fault_report.record("non-finite loss", injections=1, recovered=int(ok))
    assert len(shown) == 1, shown  # once per run, although batch 11 is non-finite too
    assert where in shown[0]
    for hint in ("log_every_n_steps=4", "detect_anomaly=True", "gradient_clip_val", "learning"):
        assert hint in shown[0]
    assert trainer.state.status == "finished" and trainer.global_step == 12


@pytest.mark.parametrize(
    ("logger", "bad_batches"),
    [(True, {5}), (False, set(range(16)))],
    ids=["between-logging-batches", "no-logger"],
)
def test_non_finite_loss_is_not_read_where_nothing_else_reads_the_device(
    logger: bool, bad_batches: set[int], tmp_path: Path
) -> None:
    # Warnings are errors in this test run: a check at batch 5, or without a logger, would fail.
    model = Model(math.nan, is_bad=lambda batch_idx: batch_idx in bad_batches)
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        max_steps=12,
        log_every_n_steps=4,
        **{**QUIET, "logger": CSVLogger(tmp_path) if logger else False},
    )
    trainer.fit(model)
    assert trainer.state.status == "finished" and trainer.global_step == 12


class Scripted(fulmen.LightningModule):
    """Logs `val_loss` from a script, one value per epoch."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.values = values

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss: torch.Tensor = self.layer(batch[0]).pow(2).mean()
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", torch.tensor(self.values[self.current_epoch]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)


# Observed with Lightning 2.6.6 on this script: with check_finite, a non-finite value at epoch 2
# stops the run there (current_epoch 3, global_step 6, stopped_epoch 2, reason NON_FINITE_METRIC,
# best score kept at 0.4), and verbose logs "Monitored metric val_loss = nan is not finite.
# Previous best value was 0.400. Signaling Trainer to stop."; without, all five epochs run.
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_early_stopping_check_finite_stops_at_the_first_non_finite_value(
    bad: float, tmp_path: Path, caplog: pytest.LogCaptureFixture, fault_report: FaultReport
) -> None:
    stopper = EarlyStopping(monitor="val_loss", check_finite=True, verbose=True, patience=3)
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        max_epochs=5,
        callbacks=[stopper],
        **{**QUIET, "limit_val_batches": 1.0},
    )
    with caplog.at_level(logging.INFO, logger="fulmen"):
        trainer.fit(Scripted([0.5, 0.4, bad, 0.3, 0.2]))
    outcome = (trainer.current_epoch, trainer.global_step, stopper.stopped_epoch)
    fault_report.record("non-finite loss", injections=1, recovered=int(outcome == (3, 6, 2)))
    assert outcome == (3, 6, 2)
    assert stopper.stopping_reason == EarlyStoppingReason.NON_FINITE_METRIC
    assert stopper.best_score.item() == pytest.approx(0.4)
    message = stopper.stopping_reason_message or ""
    assert f"val_loss = {bad}" in message and "not finite" in message and "0.400" in message
    assert message in caplog.text


def test_early_stopping_without_check_finite_runs_past_a_nan(tmp_path: Path) -> None:
    stopper = EarlyStopping(monitor="val_loss", check_finite=False, patience=3)
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        max_epochs=5,
        callbacks=[stopper],
        **{**QUIET, "limit_val_batches": 1.0},
    )
    trainer.fit(Scripted([0.5, 0.4, math.nan, 0.3, 0.2]))
    assert (trainer.current_epoch, stopper.stopped_epoch) == (5, 0)
    assert stopper.stopping_reason == EarlyStoppingReason.NOT_STOPPED
    assert stopper.best_score.item() == pytest.approx(0.2)
