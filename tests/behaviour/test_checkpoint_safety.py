"""Checkpoints are safe to load and hard to damage: what a user sees through the public API.

Files written by the Trainer load with `torch.load(weights_only=True)`; a checkpoint whose pickle
would run code is refused without running it; truncated or altered files fail loudly, naming the
file (the zip CRCs `torch.save` writes are checked on load); `AsyncCheckpointIO` lets training go
on while it writes the state of the moment of the save.
"""

from __future__ import annotations

import struct
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

import fulmen as pl
from fulmen.callbacks import ModelCheckpoint
from fulmen.demos.boring_classes import BoringModel
from fulmen.plugins import AsyncCheckpointIO, TorchCheckpointIO
from fulmen.utilities.checksum import (
    CHECKSUM_KEY,
    CheckpointCorruptedError,
    check_checkpoint_crcs,
    verify_checkpoint_file,
)
from fulmen.utilities.exceptions import MisconfigurationException


def make_trainer(tmp_path: Path, **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "default_root_dir": tmp_path,
        "max_steps": 2,
        "limit_val_batches": 0,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
    }
    options.update(kwargs)
    return pl.Trainer(**options)


def trained_checkpoint(tmp_path: Path, name: str = "model.ckpt") -> Path:
    trainer = make_trainer(tmp_path)
    trainer.fit(BoringModel())
    path = tmp_path / name
    trainer.save_checkpoint(path)
    return path


class CodeRunningPayload:
    """Unpickling this runs code: it writes `marker`. Safe loading must never do that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"with open({str(self.marker)!r}, 'w') as f: f.write('code ran')",))


def malicious_checkpoint(tmp_path: Path, marker: Path) -> Path:
    checkpoint = torch.load(trained_checkpoint(tmp_path, "clean.ckpt"), weights_only=True)
    checkpoint["hyper_parameters"] = {"payload": CodeRunningPayload(marker)}
    path = tmp_path / "malicious.ckpt"
    torch.save(checkpoint, path)
    return path


def flip_tensor_byte(path: Path) -> None:
    """Change one byte inside the first tensor's data, leaving the zip structure readable."""
    with zipfile.ZipFile(path) as archive:
        name = next(
            n for n in archive.namelist() if "/data/" in n and n.rsplit("/", 1)[1].isdigit()
        )
        info = archive.getinfo(name)
    with open(path, "r+b") as stream:
        stream.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", stream.read(4))
        position = info.header_offset + 30 + name_length + extra_length
        stream.seek(position)
        byte = stream.read(1)[0]
        stream.seek(position)
        stream.write(bytes([byte ^ 0xFF]))


def test_trainer_checkpoints_load_with_weights_only_and_carry_zip_crcs(tmp_path: Path) -> None:
    trainer = make_trainer(
        tmp_path,
        enable_checkpointing=True,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpts", every_n_train_steps=1)],
    )
    trainer.fit(BoringModel())
    trainer.save_checkpoint(tmp_path / "manual.ckpt")
    paths = [tmp_path / "manual.ckpt", *sorted((tmp_path / "ckpts").glob("*.ckpt"))]
    assert [p.name for p in paths] == ["manual.ckpt", "epoch=0-step=2.ckpt"]
    for path in paths:
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["global_step"] == 2
        assert CHECKSUM_KEY not in checkpoint  # the format is exactly Lightning's
        assert check_checkpoint_crcs(path)
        assert verify_checkpoint_file(path)


def test_the_payload_of_the_malicious_checkpoint_really_runs_when_loaded_unsafely(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker.txt"
    path = malicious_checkpoint(tmp_path, marker)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"  # so the refusals below are meaningful


def test_load_from_checkpoint_refuses_code_and_does_not_run_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = malicious_checkpoint(tmp_path, marker)
    with pytest.raises(MisconfigurationException, match=r"`weights_only=False`") as info:
        BoringModel.load_from_checkpoint(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_fit_refuses_to_resume_from_code_and_does_not_run_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = malicious_checkpoint(tmp_path, marker)
    with pytest.raises(MisconfigurationException, match=r"`weights_only=False`") as info:
        make_trainer(tmp_path, max_steps=4).fit(BoringModel(), ckpt_path=path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    assert not verify_checkpoint_file(tmp_path / "missing.ckpt")


def test_a_truncated_checkpoint_gives_an_error_naming_the_file(tmp_path: Path) -> None:
    path = trained_checkpoint(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted.*cut short"):
        BoringModel.load_from_checkpoint(path)
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted.*cut short"):
        make_trainer(tmp_path, max_steps=4).fit(BoringModel(), ckpt_path=path)
    assert not verify_checkpoint_file(path)


def test_resuming_from_an_altered_checkpoint_fails_on_its_crc(tmp_path: Path) -> None:
    path = trained_checkpoint(tmp_path)
    flip_tensor_byte(path)
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted"):
        make_trainer(tmp_path, max_steps=4).fit(BoringModel(), ckpt_path=path)
    assert not verify_checkpoint_file(path)


class GatedIO(TorchCheckpointIO):
    """Holds each write until `gate` opens (or 10 s pass, then fails the write)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.written: list[str] = []

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        self.started.set()
        if not self.gate.wait(10):
            raise TimeoutError("training did not go on while the checkpoint was being written")
        super().save_checkpoint(checkpoint, path, storage_options)
        self.written.append(Path(path).name)


class SnapshotModel(BoringModel):
    """Records its weights at each save, and opens the writer's gate one step after the save."""

    def __init__(self, io: GatedIO) -> None:
        super().__init__()
        self.io = io
        self.at_save: dict[str, torch.Tensor] = {}
        self.saved_at_step = -1
        self.steps_while_writing: list[int] = []

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.at_save = {k: v.clone() for k, v in checkpoint["state_dict"].items()}
        self.saved_at_step = self.trainer.global_step

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        after_the_save = self.trainer.global_step > self.saved_at_step >= 0
        if after_the_save and self.io.started.is_set() and not self.io.written:
            self.steps_while_writing.append(self.trainer.global_step)
            self.io.gate.set()


def test_async_checkpointing_lets_training_go_on_and_writes_the_state_of_the_save(
    tmp_path: Path,
) -> None:
    io = GatedIO()
    model = SnapshotModel(io)
    trainer = make_trainer(
        tmp_path,
        max_steps=3,
        enable_checkpointing=True,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpts", every_n_train_steps=2)],
        plugins=[AsyncCheckpointIO(io)],
    )
    trainer.fit(model)
    trainer.strategy.checkpoint_io.teardown()
    # The save at step 2 was still being written when step 3 finished.
    assert model.steps_while_writing == [3]
    assert io.written == ["epoch=0-step=2.ckpt"]
    saved = BoringModel.load_from_checkpoint(tmp_path / "ckpts" / "epoch=0-step=2.ckpt")
    for key, value in saved.state_dict().items():
        assert torch.equal(value, model.at_save[key])
    assert not torch.equal(model.state_dict()["layer.weight"], model.at_save["layer.weight"])


def test_fit_resumes_from_a_checkpoint_written_in_the_background(tmp_path: Path) -> None:
    io = AsyncCheckpointIO()
    trainer = make_trainer(tmp_path, plugins=[io])
    trainer.fit(BoringModel())
    trainer.save_checkpoint(tmp_path / "async.ckpt")
    io.teardown()
    resumed = make_trainer(tmp_path, max_steps=4)
    resumed.fit(BoringModel(), ckpt_path=tmp_path / "async.ckpt")
    assert resumed.global_step == 4


SCORES = [5.0, 3.0, 4.0, 1.0, 2.0, 6.0, 0.0, 7.0]


class ScoredModel(BoringModel):
    """Logs a fixed score per step, so an interrupted and an uninterrupted run rank alike."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        output = super().training_step(batch, batch_idx)
        self.log("score", SCORES[self.trainer.global_step % len(SCORES)])
        return output


class Killed(BaseException):
    """Ends the run where a SIGKILL would: nothing after it runs, no exception is handled."""


class KilledAtLastSaveIO(TorchCheckpointIO):
    """Dies when asked to write `last.ckpt` at `step`: that step's top-k file is already there."""

    def __init__(self, step: int) -> None:
        self.step = step

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if Path(path).name == "last.ckpt" and checkpoint["global_step"] == self.step:
            raise Killed
        super().save_checkpoint(checkpoint, path, storage_options)


def top_k_trainer(folder: Path, **kwargs: Any) -> tuple[pl.Trainer, ModelCheckpoint]:
    callback = ModelCheckpoint(
        dirpath=folder, monitor="score", every_n_train_steps=1, save_top_k=2, save_last=True
    )
    trainer = make_trainer(
        folder, max_steps=8, enable_checkpointing=True, callbacks=[callback], **kwargs
    )
    return trainer, callback


def test_a_run_resumed_after_a_kill_ends_with_exactly_the_files_of_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    reference, reference_callback = top_k_trainer(tmp_path / "reference")
    reference.fit(ScoredModel())
    folder = tmp_path / "killed"
    killed, _ = top_k_trainer(folder, plugins=[KilledAtLastSaveIO(step=4)])
    with pytest.raises(Killed):
        killed.fit(ScoredModel())
    # The kill left a top-k file newer than last.ckpt (step 3), having already removed the file
    # that one replaced; a write interrupted at another moment leaves its temporary file.
    assert sorted(p.name for p in folder.iterdir()) == [
        "epoch=0-step=2.ckpt",
        "epoch=0-step=4.ckpt",
        "last.ckpt",
    ]
    (folder / "epoch=0-step=5.ckpt.0123abcd.tmp").write_bytes(b"half a checkpoint")
    resumed, callback = top_k_trainer(folder)
    resumed.fit(ScoredModel(), ckpt_path=folder / "last.ckpt")
    expected = sorted(p.name for p in (tmp_path / "reference").iterdir())
    assert expected == ["epoch=0-step=4.ckpt", "epoch=0-step=7.ckpt", "last.ckpt"]
    assert sorted(p.name for p in folder.iterdir()) == expected
    assert {Path(p).name: float(s) for p, s in callback.best_k_models.items()} == {
        Path(p).name: float(s) for p, s in reference_callback.best_k_models.items()
    }
    assert Path(callback.best_model_path).name == "epoch=0-step=7.ckpt"
