"""The model summary, seeding, combined loaders and the demo classes, through a user's script."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from fulmen import Trainer, seed_everything
from fulmen.callbacks import ModelSummary
from fulmen.demos.boring_classes import BoringDataModule, BoringModel, RandomDataset
from fulmen.utilities import CombinedLoader, grad_norm

QUIET: dict[str, Any] = {
    "logger": False,
    "enable_progress_bar": False,
    "enable_checkpointing": False,
    "max_epochs": 1,
    "limit_train_batches": 2,
    "limit_val_batches": 2,
}


@pytest.fixture
def fulmen_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    # fulmen's logger prints to stderr itself and does not propagate; let caplog see it too.
    monkeypatch.setattr(logging.getLogger("fulmen"), "propagate", True)
    caplog.set_level(logging.INFO, logger="fulmen")
    return caplog


def _summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [message for message in caplog.messages if "Trainable params" in message]


def test_fit_logs_the_model_summary_once(
    tmp_path: Path, fulmen_log: pytest.LogCaptureFixture
) -> None:
    Trainer(default_root_dir=tmp_path, **QUIET).fit(BoringModel())
    (summary,) = _summaries(fulmen_log)
    assert "0 | layer | Linear | 66     | train | 0    " in summary.splitlines()


def test_summary_can_be_turned_off_or_deepened(
    tmp_path: Path, fulmen_log: pytest.LogCaptureFixture
) -> None:
    Trainer(default_root_dir=tmp_path, enable_model_summary=False, **QUIET).fit(BoringModel())
    assert _summaries(fulmen_log) == []

    class Nested(BoringModel):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Sequential(torch.nn.Linear(32, 2))  # type: ignore[assignment]

    Trainer(default_root_dir=tmp_path, callbacks=[ModelSummary(max_depth=-1)], **QUIET).fit(
        Nested()
    )
    (summary,) = _summaries(fulmen_log)
    assert "1 | layer.0 | Linear     | 66     | train | 0    " in summary.splitlines()


def test_seed_everything_makes_two_fits_identical(tmp_path: Path) -> None:
    weights = []
    for _ in range(2):
        seed_everything(42, verbose=False)
        model = BoringModel()
        Trainer(default_root_dir=tmp_path, enable_model_summary=False, **QUIET).fit(model)
        weights.append(model.layer.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_training_on_a_combined_loader_sees_every_iterable(tmp_path: Path) -> None:
    class TwoSources(BoringModel):
        def __init__(self) -> None:
            super().__init__()
            self.batch_sizes: list[dict[str, int]] = []

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.batch_sizes.append({key: len(value) for key, value in batch.items()})
            return super().training_step(batch["a"], batch_idx)

    loaders = {
        "a": DataLoader(RandomDataset(32, 4)),
        "b": DataLoader(RandomDataset(32, 6), batch_size=2),
    }
    model = TwoSources()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dataloaders=CombinedLoader(loaders, "max_size_cycle"))
    assert model.batch_sizes == [{"a": 1, "b": 2}] * 4
    assert trainer.global_step == 4


def test_grad_norm_logged_before_the_optimizer_step(tmp_path: Path) -> None:
    class LogsNorms(BoringModel):
        def on_before_optimizer_step(self, optimizer: Any) -> None:
            self.log_dict(grad_norm(self.layer, norm_type=2))

    trainer = Trainer(default_root_dir=tmp_path, enable_model_summary=False, **QUIET)
    trainer.fit(LogsNorms())
    assert {"grad_2.0_norm/weight", "grad_2.0_norm/bias", "grad_2.0_norm_total"} <= set(
        trainer.callback_metrics
    )


def test_boring_data_module_fits_validates_and_tests(tmp_path: Path) -> None:
    trainer = Trainer(default_root_dir=tmp_path, enable_model_summary=False, **QUIET)
    model, datamodule = BoringModel(), BoringDataModule()
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 2
    assert trainer.test(model, datamodule=datamodule, verbose=False) == [{}]
