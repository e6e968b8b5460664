"""validate/test results, several dataloaders, predict outputs and memory, datamodules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

import fulmen
from tests.helpers.models import QUIET, loader, make_counting_model, regression_data

Base = make_counting_model(fulmen)


def test_validate_and_test_return_epoch_metrics_per_dataloader() -> None:
    model = Base()
    trainer = fulmen.Trainer(**QUIET)
    [val] = trainer.validate(model, verbose=False)
    [test] = trainer.test(model, verbose=False)
    assert set(val) == {"val_loss"} and set(test) == {"test_loss"}
    x, y = regression_data(16, seed=1).tensors
    expected = torch.nn.functional.mse_loss(model(x), y).item()
    assert val["val_loss"] == pytest.approx(expected, rel=1e-5)  # equal batches: mean of means


def test_several_eval_dataloaders_get_suffixed_keys() -> None:
    seen: list[int] = []

    class Multi(Base):  # type: ignore[misc,valid-type]
        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            seen.append(dataloader_idx)
            self.log("val_loss", float(dataloader_idx))

    results = fulmen.Trainer(**QUIET).validate(
        Multi(), dataloaders=[loader(8), loader(12)], verbose=False
    )
    assert results == [{"val_loss/dataloader_idx_0": 0.0}, {"val_loss/dataloader_idx_1": 1.0}]
    assert seen == [0, 0, 1, 1, 1]


def test_verbose_validate_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    fulmen.Trainer(**QUIET).validate(Base())
    out = capsys.readouterr().out
    assert "Validate metric" in out and "DataLoader 0" in out and "val_loss" in out


def test_predict_returns_outputs_per_batch_and_nothing_when_asked() -> None:
    trainer = fulmen.Trainer(**QUIET)
    predictions = trainer.predict(Base())
    assert [p.shape for p in predictions] == [torch.Size([4, 1])] * 4
    assert trainer.predict(Base(), return_predictions=False) is None
    two = trainer.predict(Base(), dataloaders=[loader(8), loader(4)])
    assert [len(p) for p in two] == [2, 1]


def test_predict_without_return_keeps_memory_flat() -> None:
    class Big(Base):  # type: ignore[misc,valid-type]
        def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return torch.zeros(256, 1024)  # 1 MiB per batch

    trainer = fulmen.Trainer(**QUIET)
    data = DataLoader(regression_data(400), batch_size=1)
    assert trainer.predict(Big(), dataloaders=data, return_predictions=False) is None
    assert trainer.predict_predictions == [[]]


def test_evaluate_after_fit_reuses_the_model_and_best_checkpoint(tmp_path: Path) -> None:
    model = Base()
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model)
    results = trainer.test(ckpt_path="best", verbose=False)
    assert set(results[0]) == {"test_loss"}
    assert trainer.ckpt_path is not None and trainer.ckpt_path.endswith("epoch=0-step=8.ckpt")


class DataModule(fulmen.LightningDataModule):
    def __init__(self, batch_size: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.calls: list[str] = []

    def prepare_data(self) -> None:
        self.calls.append("prepare_data")

    def setup(self, stage: str) -> None:
        self.calls.append(f"setup:{stage}")

    def train_dataloader(self) -> DataLoader[Any]:
        return loader(16, self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader[Any]:
        return loader(8, self.hparams.batch_size, seed=1)

    def test_dataloader(self) -> DataLoader[Any]:
        return loader(8, self.hparams.batch_size, seed=2)

    def teardown(self, stage: str) -> None:
        self.calls.append(f"teardown:{stage}")


def test_datamodule_hooks_and_loaders_are_used() -> None:
    dm = DataModule(batch_size=8)
    model = Base()
    trainer = fulmen.Trainer(max_epochs=1, **QUIET)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    assert dm.calls == [
        "prepare_data",
        "setup:fit",
        "teardown:fit",
        "prepare_data",
        "setup:test",
        "teardown:test",
    ]
    assert model.counts["train"] == 2 and trainer.datamodule is dm


def test_datamodule_from_datasets() -> None:
    dm = fulmen.LightningDataModule.from_datasets(
        regression_data(12), regression_data(8), batch_size=4
    )
    model = Base()
    fulmen.Trainer(max_epochs=1, **QUIET).fit(model, datamodule=dm)
    assert model.counts["train"] == 3 and model.counts["val"] == 2


def test_both_dataloaders_and_datamodule_is_an_error() -> None:
    with pytest.raises(
        fulmen.utilities.exceptions.MisconfigurationException, match="one or the other"
    ):
        fulmen.Trainer(**QUIET).fit(Base(), train_dataloaders=loader(), datamodule=DataModule())


def test_prediction_writer_receives_batch_indices() -> None:
    from fulmen.callbacks import BasePredictionWriter

    seen: list[Any] = []

    class Writer(BasePredictionWriter):
        def write_on_batch_end(
            self,
            trainer: Any,
            pl_module: Any,
            prediction: Any,
            batch_indices: Any,
            batch: Any,
            batch_idx: int,
            dataloader_idx: int,
        ) -> None:
            seen.append(list(batch_indices))

    trainer = fulmen.Trainer(
        callbacks=[Writer("batch")],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.predict(Base(), dataloaders=loader(10, batch_size=4), return_predictions=False)
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_seed_everything_with_workers_seeds_each_worker_differently() -> None:
    class WorkerSeed(torch.utils.data.Dataset[torch.Tensor]):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> torch.Tensor:
            return torch.rand(1)

    class Model(Base):  # type: ignore[misc,valid-type]
        def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
            return batch

    def draw() -> list[float]:
        fulmen.seed_everything(7, workers=True, verbose=False)
        data = DataLoader(WorkerSeed(), batch_size=1, num_workers=2)
        return [float(p) for p in fulmen.Trainer(**QUIET).predict(Model(), dataloaders=data)]

    first, second = draw(), draw()
    assert first == second  # reproducible
    assert len(set(first)) == 4  # and the two workers do not repeat each other's numbers
