"""A run stopped at any step and resumed from its checkpoint ends bitwise equal to an unbroken run.

The model uses dropout, the train loader shuffles (also with worker processes), the scheduler
steps per batch, and validation runs inside the epoch: every source of randomness and position
that a resume can get wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

import fulmen
from fulmen.callbacks import ModelCheckpoint
from tests.helpers.models import regression_data


class Noisy(fulmen.LightningModule):
    def __init__(self, workers: int = 0) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
        )
        self.workers = workers

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.7)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(regression_data(40), batch_size=4, shuffle=True, num_workers=self.workers)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(regression_data(8, seed=1), batch_size=4, shuffle=True)


def trainer(root: Path, **kwargs: Any) -> fulmen.Trainer:
    settings: dict[str, Any] = dict(
        default_root_dir=root, max_epochs=3, val_check_interval=0.5, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    return fulmen.Trainer(**{**settings, **kwargs})


def unbroken(root: Path, workers: int) -> tuple[dict[str, torch.Tensor], Path]:
    fulmen.seed_everything(3, verbose=False)
    saver = ModelCheckpoint(
        dirpath=root / "ckpts", every_n_train_steps=1, save_top_k=-1, filename="{step}"
    )
    model = Noisy(workers)
    trainer(root, callbacks=[saver]).fit(model)
    return model.state_dict(), root / "ckpts"


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_at_any_step_is_bitwise_exact(workers: int, tmp_path: Path) -> None:
    expected, ckpts = unbroken(tmp_path / "unbroken", workers)
    steps = [1, 5, 9, 10, 11, 17, 29] if workers == 0 else [1, 10, 17]  # 10 batches per epoch
    for step in steps:
        fulmen.seed_everything(1234, verbose=False)  # a different seed must not matter
        model = Noisy(workers)
        resumed = trainer(tmp_path / f"resumed{step}")
        resumed.fit(model, ckpt_path=ckpts / f"step={step}.ckpt")
        assert resumed.global_step == 30
        for key, value in expected.items():
            assert torch.equal(model.state_dict()[key], value), (step, key)


def test_resume_skips_samples_without_reading_them(tmp_path: Path) -> None:
    reads: list[int] = []

    class Counting(torch.utils.data.Dataset[Any]):
        def __init__(self) -> None:
            self.data = regression_data(40)

        def __len__(self) -> int:
            return 40

        def __getitem__(self, index: int) -> Any:
            reads.append(index)
            return self.data[index]

    class Model(Noisy):
        def train_dataloader(self) -> DataLoader[Any]:
            return DataLoader(Counting(), batch_size=4, shuffle=True)

    saver = ModelCheckpoint(
        dirpath=tmp_path / "c", every_n_train_steps=7, save_top_k=-1, filename="{step}"
    )
    trainer(tmp_path, callbacks=[saver], max_epochs=1, limit_val_batches=0).fit(Model())
    reads.clear()
    trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(
        Model(), ckpt_path=tmp_path / "c" / "step=7.ckpt"
    )
    assert len(reads) == 12  # the last 3 batches of 4: the 7 finished batches were not read


def test_last_on_a_first_launch_starts_from_scratch_without_a_warning(tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=tmp_path / "c", save_last=True)
    run = trainer(tmp_path, callbacks=[saver], max_epochs=1, limit_val_batches=0)
    run.fit(Noisy(), ckpt_path="last")  # warnings are errors in this suite
    assert run.ckpt_path is None and run.global_step == 10
    again = trainer(
        tmp_path,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "c", save_last=True)],
        max_epochs=2,
        limit_val_batches=0,
    )
    again.fit(Noisy(), ckpt_path="last")
    assert again.ckpt_path == str(tmp_path / "c" / "last.ckpt") and again.global_step == 20


def test_checkpoints_work_on_any_fsspec_url(tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath="memory://fulmen-test/ckpts", save_last=True, filename="{step}")
    first = trainer(tmp_path, callbacks=[saver], max_epochs=1, limit_val_batches=0)
    first.fit(Noisy())
    assert saver.last_model_path == "memory://fulmen-test/ckpts/last.ckpt"
    loaded = Noisy.load_from_checkpoint("memory://fulmen-test/ckpts/step=10.ckpt")
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.parameters(), first.lightning_module.parameters())
    )
    resumed = trainer(tmp_path, max_epochs=2, limit_val_batches=0, enable_checkpointing=False)
    resumed.fit(Noisy(), ckpt_path="memory://fulmen-test/ckpts/last.ckpt")
    assert resumed.global_step == 20
