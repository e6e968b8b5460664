"""`TrainerSnapshot` / `tuning_run`: everything a tuning trial changes is put back exactly."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

import fulmen
from fulmen.callbacks import Callback
from fulmen.demos.boring_classes import BoringModel
from fulmen.tuner.trial import TrainerSnapshot, dataset_length, reload_dataloaders, tuning_run


class Model(BoringModel):
    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=0.01)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)]


def trained_trainer() -> tuple[Any, Model]:
    trainer = fulmen.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = Model()
    trainer.fit(model)
    return trainer, model


def everything(trainer: Any, model: Model) -> dict[str, Any]:
    return copy.deepcopy(
        {
            "weights": model.state_dict(),
            "optimizer": trainer.optimizers[0].state_dict(),
            "scheduler": trainer.lr_scheduler_configs[0].scheduler.state_dict(),
            "state": (trainer.state.epoch, trainer.global_step, trainer.state.batch_idx),
            "limits": (trainer.max_steps, trainer.limit_val_batches),
            "loader": trainer.train_dataloader,
        }
    )


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b) and a.dtype == b.dtype
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, torch.utils.data.DataLoader):
        assert a.batch_size == b.batch_size and len(a) == len(b)
    else:
        assert a == b


def test_tuning_run_swaps_callbacks_loggers_and_settings_then_restores_everything() -> None:
    trainer, model = trained_trainer()
    callbacks, loggers = trainer.callbacks, trainer.loggers
    before = everything(trainer, model)
    probe = Callback()
    with tuning_run(trainer, [probe], max_steps=99, limit_val_batches=7):
        assert trainer.callbacks == [probe] and (trainer.max_steps, trainer.limit_val_batches) == (
            99,
            7,
        )
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        trainer.optimizers[0].param_groups[0]["lr"] = 5.0
        trainer.lr_scheduler_configs[0].scheduler.step()
        trainer.state.global_step = 1234
        trainer.state.epoch = 9
        trainer.extra_attribute = "gone after"
    assert_same(everything(trainer, model), before)
    assert trainer.callbacks is callbacks and trainer.loggers is loggers
    assert not hasattr(trainer, "extra_attribute")
    assert all(p.grad is None for p in model.parameters())


def test_restore_happens_after_an_error_too() -> None:
    trainer, model = trained_trainer()
    before = everything(trainer, model)
    with pytest.raises(RuntimeError, match="boom"), tuning_run(trainer, []):
        trainer.state.global_step = 77
        with torch.no_grad():
            next(model.parameters()).zero_()
        raise RuntimeError("boom")
    assert_same(everything(trainer, model), before)


def test_snapshot_keeps_its_tensors_on_the_cpu_and_copies_them() -> None:
    trainer, model = trained_trainer()
    snapshot = TrainerSnapshot.take(trainer)
    weight = next(model.parameters())
    saved = snapshot.model["layer.weight"]
    assert saved.device.type == "cpu" and saved.data_ptr() != weight.data_ptr()
    assert torch.equal(saved, weight.detach())


def test_reloading_drops_the_loaders_and_dataset_length_reads_them() -> None:
    trainer, _ = trained_trainer()
    assert dataset_length(trainer, "train") == 64  # BoringModel: RandomDataset(32, 64)
    reload_dataloaders(trainer)
    assert trainer.train_dataloader is None and dataset_length(trainer, "train") is None
