"""ModelCheckpoint, EarlyStopping and OnExceptionCheckpoint through `Trainer.fit`, as a user runs them.

Expected files and stop epochs are what Lightning 2.6 produces for the same scripts.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fulmen as pl
from fulmen.callbacks import EarlyStopping, ModelCheckpoint, OnExceptionCheckpoint


def first_column(rows: list[tuple[torch.Tensor]]) -> torch.Tensor:
    return torch.stack([row[0] for row in rows])


class ScriptedModel(pl.LightningModule):
    """Logs `val_loss` from a fixed script, one value per validation run (sanity check excluded)."""

    def __init__(self, val_losses: Sequence[float] = (5, 4, 6, 3, 7), fail_at_step: int = -1):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.val_losses = list(val_losses)
        self.validations = 0
        self.fail_at_step = fail_at_step

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.fail_at_step:
            raise RuntimeError("scripted failure")
        loss: torch.Tensor = self.layer(batch).pow(2).mean()
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.layer(batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.log("val_loss", float(self.val_losses[self.validations % len(self.val_losses)]))
        self.validations += 1

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=4, collate_fn=first_column)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4, collate_fn=first_column)


def make_trainer(root: Path, callbacks: list[Any], **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "default_root_dir": root,
        "max_epochs": 4,
        "limit_train_batches": 4,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": callbacks,
    }
    options.update(kwargs)
    return pl.Trainer(**options)


def files_in(path: str | Path | None) -> list[str]:
    assert path is not None
    return sorted(os.listdir(path))


def test_default_checkpoint_lands_in_default_root_dir(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, [], max_epochs=2)
    trainer.fit(ScriptedModel())
    assert files_in(tmp_path / "checkpoints") == ["epoch=1-step=8.ckpt"]
    assert trainer.checkpoint_callback is not None
    assert trainer.checkpoint_callback.best_model_path == str(
        tmp_path / "checkpoints" / "epoch=1-step=8.ckpt"
    )


def test_default_checkpoint_lands_in_the_logger_version_dir(tmp_path: Path) -> None:
    from fulmen.loggers import CSVLogger

    trainer = make_trainer(
        tmp_path, [], max_epochs=1, logger=CSVLogger(tmp_path), log_every_n_steps=1
    )
    trainer.fit(ScriptedModel())
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert files_in(checkpoints) == ["epoch=0-step=4.ckpt"]


def test_top_k_by_monitored_metric_with_last(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ck",
        monitor="val_loss",
        save_top_k=2,
        save_last=True,
        filename="{epoch}-{val_loss:.1f}",
    )
    make_trainer(tmp_path, [checkpoint]).fit(ScriptedModel())
    assert files_in(tmp_path / "ck") == [
        "epoch=1-val_loss=4.0.ckpt",
        "epoch=3-val_loss=3.0.ckpt",
        "last.ckpt",
    ]
    assert os.path.basename(checkpoint.best_model_path) == "epoch=3-val_loss=3.0.ckpt"
    assert checkpoint.best_model_score is not None
    assert checkpoint.best_model_score.item() == 3.0
    assert os.path.basename(checkpoint.kth_best_model_path) == "epoch=1-val_loss=4.0.ckpt"


def test_last_checkpoint_loads_safely_and_holds_callback_state(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_loss", save_last=True)
    stopper = EarlyStopping("val_loss", patience=5)
    make_trainer(tmp_path, [stopper, checkpoint], max_epochs=2).fit(ScriptedModel())
    saved = torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 8
    state = saved["callbacks"][checkpoint.state_key]
    assert os.path.basename(state["best_model_path"]) == "epoch=1-step=8.ckpt"
    assert saved["callbacks"][stopper.state_key]["best_score"].item() == 4.0


def test_every_n_train_steps_saves_mid_epoch(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=3, save_top_k=-1)
    make_trainer(tmp_path, [checkpoint], max_epochs=2).fit(ScriptedModel())
    assert files_in(tmp_path / "ck") == ["epoch=0-step=3.ckpt", "epoch=1-step=6.ckpt"]


def test_fast_dev_run_writes_no_checkpoint(tmp_path: Path) -> None:
    # Lightning 2.6 still writes last.ckpt here from on_train_end, against its own rule that
    # fast_dev_run disables checkpointing; fulmen keeps the rule.
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    make_trainer(tmp_path, [checkpoint], fast_dev_run=True).fit(ScriptedModel())
    assert not (tmp_path / "ck").exists()


def test_early_stopping_stops_after_patience_validations(tmp_path: Path) -> None:
    stopper = EarlyStopping("val_loss", patience=2)
    trainer = make_trainer(tmp_path, [stopper], max_epochs=10)
    trainer.fit(ScriptedModel(val_losses=(5, 4, 4.5, 4.2, 1)))
    assert stopper.stopped_epoch == 3
    assert trainer.current_epoch == 4
    assert stopper.wait_count == 2
    assert stopper.best_score.item() == 4.0


def test_early_stopping_patience_counts_checks_not_epochs(tmp_path: Path) -> None:
    stopper = EarlyStopping("val_loss", patience=2)
    trainer = make_trainer(tmp_path, [stopper], max_epochs=20, check_val_every_n_epoch=2)
    trainer.fit(ScriptedModel(val_losses=(5, 6, 7, 1)))
    assert stopper.stopped_epoch == 5
    assert trainer.current_epoch == 6


def test_early_stopping_missing_monitor_names_available_metrics(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, [EarlyStopping("val_acc")], max_epochs=1)
    with pytest.raises(RuntimeError, match=r"val_acc.*val_loss"):
        trainer.fit(ScriptedModel())


def test_on_exception_checkpoint_survives_a_crash_until_a_clean_run(tmp_path: Path) -> None:
    on_exception = OnExceptionCheckpoint(tmp_path / "crash")
    with warnings.catch_warnings():
        # fit(ckpt_path=None) with an OnExceptionCheckpoint warns that it means "last"; that
        # resume is pinned by the next test, this one is about the file.
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(RuntimeError, match="scripted failure"):
            make_trainer(tmp_path, [on_exception], max_epochs=2).fit(ScriptedModel(fail_at_step=5))
        saved = torch.load(on_exception.ckpt_path, weights_only=True)
        assert saved["global_step"] == 5
        make_trainer(tmp_path, [on_exception], max_epochs=3).fit(ScriptedModel())
    assert not os.path.exists(on_exception.ckpt_path)


def test_fit_after_a_crash_resumes_from_the_on_exception_checkpoint(tmp_path: Path) -> None:
    on_exception = OnExceptionCheckpoint(tmp_path / "crash")
    with pytest.raises(RuntimeError, match="scripted failure"), pytest.warns(UserWarning):
        make_trainer(tmp_path, [on_exception], max_epochs=2).fit(ScriptedModel(fail_at_step=5))
    trainer = make_trainer(tmp_path, [on_exception], max_epochs=3)
    with warnings.catch_warnings(record=True) as caught:
        # Also warned, by Lightning at least: resuming mid-epoch with a plain DataLoader.
        warnings.simplefilter("always")
        trainer.fit(ScriptedModel())
    assert any("ckpt_path" in str(warning.message) for warning in caught)
    assert trainer.ckpt_path == on_exception.ckpt_path
    assert trainer.global_step == 12


def test_resume_restores_top_k_tracking(tmp_path: Path) -> None:
    first = ModelCheckpoint(
        dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=2, save_last=True
    )
    make_trainer(tmp_path, [first], max_epochs=2).fit(ScriptedModel(val_losses=(5, 4)))

    second = ModelCheckpoint(
        dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=2, save_last=True
    )
    # Resuming into the same folder is expected: no "not empty" warning (warnings are errors).
    make_trainer(tmp_path, [second], max_epochs=3).fit(
        ScriptedModel(val_losses=(4.5,)), ckpt_path=tmp_path / "ck" / "last.ckpt"
    )
    assert files_in(tmp_path / "ck") == ["epoch=1-step=8.ckpt", "epoch=2-step=12.ckpt", "last.ckpt"]
    assert {
        os.path.basename(path): score.item() for path, score in second.best_k_models.items()
    } == {
        "epoch=1-step=8.ckpt": 4.0,
        "epoch=2-step=12.ckpt": 4.5,
    }


def test_early_stopping_can_be_customised_by_overriding_public_methods(tmp_path: Path) -> None:
    class StopAtSecondCheck(EarlyStopping):
        checks = 0

        def evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
            self.checks += 1
            return self.checks >= 2, "enough"

    stopper = StopAtSecondCheck("val_loss")
    trainer = make_trainer(tmp_path, [stopper], max_epochs=10)
    trainer.fit(ScriptedModel(val_losses=(5, 4, 3, 2, 1)))
    assert stopper.checks == 2 and trainer.current_epoch == 2 and stopper.stopped_epoch == 1
