"""BasePredictionWriter: when it writes, what it passes, and early errors for missing overrides."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.callbacks.prediction_writer import BasePredictionWriter, WriteInterval
from fulmen.utilities.exceptions import MisconfigurationException

MODULE: Any = None  # the hooks under test do not touch the LightningModule
TRAINER: Any = SimpleNamespace()


class RecordingWriter(BasePredictionWriter):
    def __init__(self, write_interval: str) -> None:
        super().__init__(write_interval)
        self.batches: list[tuple[Any, ...]] = []
        self.epochs: list[tuple[Any, ...]] = []

    def write_on_batch_end(
        self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any, batch: Any,
        batch_idx: int, dataloader_idx: int,
    ) -> None:  # fmt: skip
        self.batches.append((prediction, batch_indices, batch, batch_idx, dataloader_idx))

    def write_on_epoch_end(
        self, trainer: Any, pl_module: Any, predictions: Any, batch_indices: Any
    ) -> None:
        self.epochs.append((predictions, batch_indices))


class BatchOnlyWriter(BasePredictionWriter):
    def write_on_batch_end(self, *args: Any) -> None:
        pass


def run_predict(writer: BasePredictionWriter, trainer: Any) -> None:
    writer.setup(trainer, MODULE, "predict")
    for dataloader_idx, loader in enumerate(trainer.predict_predictions):
        for batch_idx, prediction in enumerate(loader):
            writer.on_predict_batch_end(
                trainer, MODULE, prediction, "batch", batch_idx, dataloader_idx
            )
    writer.on_predict_epoch_end(trainer, MODULE)


def two_loader_trainer() -> Any:
    return SimpleNamespace(
        predict_predictions=[[torch.tensor(0), torch.tensor(1)], [torch.tensor(2)]],
        predict_batch_indices=[[[0, 1, 2], [3, 4, 5]], [[0, 1, 2, 3]]],
    )


def test_batch_interval_writes_each_prediction_with_its_sample_indices() -> None:
    writer = RecordingWriter("batch")
    run_predict(writer, two_loader_trainer())
    assert [(int(p), i, b, bi, d) for p, i, b, bi, d in writer.batches] == [
        (0, [0, 1, 2], "batch", 0, 0),
        (1, [3, 4, 5], "batch", 1, 0),
        (2, [0, 1, 2, 3], "batch", 0, 1),
    ]
    assert writer.epochs == []


def test_epoch_interval_writes_all_predictions_per_dataloader_once() -> None:
    trainer = two_loader_trainer()
    writer = RecordingWriter("epoch")
    run_predict(writer, trainer)
    assert writer.batches == []
    assert writer.epochs == [(trainer.predict_predictions, trainer.predict_batch_indices)]


def test_one_dataloader_gets_a_flat_list_of_predictions() -> None:
    trainer = SimpleNamespace(predict_predictions=[["a", "b"]], predict_batch_indices=[[[0], [1]]])
    writer = RecordingWriter("batch_and_epoch")
    run_predict(writer, trainer)
    assert len(writer.batches) == 2
    assert writer.epochs == [(["a", "b"], [[[0], [1]]])]


def test_without_recorded_indices_writers_get_empty_lists() -> None:
    trainer = SimpleNamespace(predict_predictions=[["a", "b"]])
    writer = RecordingWriter("batch_and_epoch")
    run_predict(writer, trainer)
    assert [indices for _, indices, *_ in writer.batches] == [[], []]
    assert writer.epochs == [(["a", "b"], [[]])]


@pytest.mark.parametrize("interval", ["epoch", "batch_and_epoch"])
def test_missing_override_fails_at_setup(interval: str) -> None:
    writer = BatchOnlyWriter(interval)
    with pytest.raises(MisconfigurationException, match=r"must override write_on_epoch_end\(\)"):
        writer.setup(TRAINER, MODULE, "predict")


def test_base_writer_names_both_missing_methods() -> None:
    with pytest.raises(
        MisconfigurationException, match="write_on_batch_end\\(\\) and write_on_epoch_end"
    ):
        BasePredictionWriter("batch_and_epoch").setup(TRAINER, MODULE, "predict")


def test_setup_for_other_stages_does_not_check() -> None:
    BasePredictionWriter("batch").setup(TRAINER, MODULE, "fit")


def test_unknown_write_interval_is_rejected() -> None:
    with pytest.raises(MisconfigurationException, match="write_interval='step'"):
        BasePredictionWriter("step")


def test_write_interval_flags() -> None:
    assert [(i.on_batch, i.on_epoch) for i in WriteInterval] == [
        (True, False),
        (False, True),
        (True, True),
    ]
    assert BasePredictionWriter().interval == "batch"
