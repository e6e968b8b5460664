"""torchmetrics objects logged with self.log / log_dict: computed at epoch end, then reset."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchmetrics
from torchmetrics import Metric, MetricCollection

import fulmen
from tests.helpers.models import QUIET, make_counting_model

Base = make_counting_model(fulmen)


class SumOfTargets(Metric):
    """A custom metric with its own state, as users write them."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, target: torch.Tensor) -> None:
        self.total += target.sum()
        self.count += target.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class WithMetrics(Base):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.mean_target = SumOfTargets()
        self.metrics = MetricCollection(
            {"mae": torchmetrics.MeanAbsoluteError(), "mse": torchmetrics.MeanSquaredError()}
        )
        self.epoch_values: list[float] = []

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.mean_target.update(y)
        self.log("mean_target", self.mean_target)
        self.metrics.update(self(x), y)
        self.log_dict(self.metrics)

    def on_validation_epoch_end(self) -> None:
        self.epoch_values.append(float(self.trainer.callback_metrics.get("mean_target", torch.nan)))


def test_custom_metric_and_collection_are_computed_per_epoch_and_reset() -> None:
    model = WithMetrics()
    trainer = fulmen.Trainer(max_epochs=2, num_sanity_val_steps=2, **QUIET)
    trainer.fit(model)
    targets = torch.cat([y for _, y in model.val_dataloader()])
    # Each epoch sees the 16 validation targets once: the sanity check's 8 are not counted.
    assert trainer.callback_metrics["mean_target"].item() == pytest.approx(
        targets.mean().item(), rel=1e-6
    )
    assert {"mae", "mse"} <= set(trainer.callback_metrics)
    x = torch.cat([x for x, _ in model.val_dataloader()])
    expected_mse = torch.nn.functional.mse_loss(model(x), targets).item()
    assert trainer.callback_metrics["mse"].item() == pytest.approx(expected_mse, rel=1e-5)
    assert model.mean_target.count.item() == 0  # reset after the epoch


def test_validate_returns_metric_values() -> None:
    results = fulmen.Trainer(**QUIET).validate(WithMetrics(), verbose=False)
    assert set(results[0]) == {"mean_target", "mae", "mse"}
