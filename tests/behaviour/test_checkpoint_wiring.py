"""Tests for the lead to add once the wiring diff is applied (they fail without it)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from fulmen.callbacks import ModelCheckpoint
from fulmen.demos.boring_classes import BoringModel
from fulmen.plugins import AsyncCheckpointIO, TorchCheckpointIO
from fulmen.utilities.checksum import CheckpointCorruptedError
from tests.behaviour.test_checkpoint_safety import (
    flip_tensor_byte,
    make_trainer,
    trained_checkpoint,
)


def test_load_from_checkpoint_refuses_an_altered_checkpoint(tmp_path: Path) -> None:
    path = trained_checkpoint(tmp_path)
    flip_tensor_byte(path)
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted"):
        BoringModel.load_from_checkpoint(path)


def last_trainer(tmp_path: Path, **kwargs: Any):
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpts", save_last=True)
    return make_trainer(tmp_path, enable_checkpointing=True, callbacks=[callback], **kwargs)


def test_ckpt_path_last_skips_a_damaged_newest_file(tmp_path: Path) -> None:
    ckpts = tmp_path / "ckpts"
    trainer = last_trainer(tmp_path)
    trainer.fit(BoringModel())
    os.replace(ckpts / "last.ckpt", ckpts / "last-v1.ckpt")
    os.utime(ckpts / "last-v1.ckpt", (time.time() - 100, time.time() - 100))
    trainer.save_checkpoint(ckpts / "last.ckpt")
    flip_tensor_byte(ckpts / "last.ckpt")
    resumed = last_trainer(tmp_path, max_steps=4)
    with pytest.warns(UserWarning) as record:
        resumed.fit(BoringModel(), ckpt_path="last")
    assert any("skipping" in str(w.message) and "last.ckpt'" in str(w.message) for w in record)
    assert resumed.ckpt_path == str(ckpts / "last-v1.ckpt")
    assert resumed.global_step == 4


def test_ckpt_path_last_raises_when_every_candidate_is_damaged(tmp_path: Path) -> None:
    trainer = last_trainer(tmp_path)
    trainer.fit(BoringModel())
    flip_tensor_byte(tmp_path / "ckpts" / "last.ckpt")
    resumed = last_trainer(tmp_path, max_steps=4)
    with (
        pytest.warns(UserWarning),
        pytest.raises(CheckpointCorruptedError, match="every candidate"),
    ):
        resumed.fit(BoringModel(), ckpt_path="last")


class SlowIO(TorchCheckpointIO):
    def __init__(self) -> None:
        self.finished: list[str] = []

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        time.sleep(0.3)
        super().save_checkpoint(checkpoint, path, storage_options)
        self.finished.append(Path(path).name)


def test_fit_returns_after_the_pending_background_write(tmp_path: Path) -> None:
    inner = SlowIO()
    trainer = make_trainer(
        tmp_path,
        enable_checkpointing=True,
        plugins=[AsyncCheckpointIO(inner)],
        callbacks=[
            ModelCheckpoint(dirpath=tmp_path / "ckpts", every_n_train_steps=1, save_top_k=1)
        ],
    )
    trainer.fit(BoringModel())
    assert inner.finished == ["epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt"]
    assert sorted(os.listdir(tmp_path / "ckpts")) == ["epoch=0-step=2.ckpt"]


class FailingIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        raise OSError(28, "No space left on device")


def test_a_failed_background_write_fails_fit(tmp_path: Path) -> None:
    trainer = make_trainer(
        tmp_path,
        max_steps=1,
        enable_checkpointing=True,
        plugins=[AsyncCheckpointIO(FailingIO())],
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpts", every_n_train_steps=1)],
    )
    with pytest.raises(OSError, match="No space left"):
        trainer.fit(BoringModel())


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # raised inside Lightning
def test_fit_resumes_from_a_checkpoint_lightning_wrote(tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.demos.boring_classes import BoringModel as PLBoring

    import fulmen

    settings = dict(limit_train_batches=4, limit_val_batches=1, logger=False,
                    enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    theirs = pl.Trainer(max_epochs=2, default_root_dir=str(tmp_path), **settings)
    theirs.fit(PLBoring())
    path = theirs.checkpoint_callback.best_model_path
    ours = fulmen.Trainer(max_epochs=3, enable_checkpointing=False, **settings)
    model = BoringModel()
    ours.fit(model, ckpt_path=path)
    # Two epochs of four steps were done by Lightning; fulmen runs the third.
    assert (ours.current_epoch, ours.global_step) == (3, 12)
