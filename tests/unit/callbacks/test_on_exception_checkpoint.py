"""OnExceptionCheckpoint with a fake trainer: save on exception, remove on a clean teardown."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from fulmen.callbacks.checkpoint import Checkpoint
from fulmen.callbacks.on_exception_checkpoint import OnExceptionCheckpoint


def fake_trainer(is_global_zero: bool = True) -> SimpleNamespace:
    def save_checkpoint(filepath: str, weights_only: bool = False) -> None:
        os.makedirs(os.path.dirname(filepath), exist_ok=True)
        Path(filepath).write_text("state")
        trainer.saved.append(filepath)

    trainer = SimpleNamespace(
        is_global_zero=is_global_zero, saved=[], save_checkpoint=save_checkpoint
    )
    return trainer


def test_is_a_checkpoint_callback() -> None:
    assert isinstance(OnExceptionCheckpoint("."), Checkpoint)


def test_saves_to_dirpath_filename_on_exception(tmp_path: Path) -> None:
    callback = OnExceptionCheckpoint(tmp_path / "ck", filename="crash")
    trainer = fake_trainer()
    callback.on_exception(trainer, None, RuntimeError("boom"))  # type: ignore[arg-type]
    assert callback.ckpt_path == str(tmp_path / "ck" / "crash.ckpt")
    assert trainer.saved == [callback.ckpt_path]
    assert (tmp_path / "ck" / "crash.ckpt").read_text() == "state"


def test_teardown_removes_the_file_on_rank_zero_only(tmp_path: Path) -> None:
    callback = OnExceptionCheckpoint(tmp_path)
    Path(callback.ckpt_path).write_text("old crash")
    callback.teardown(fake_trainer(is_global_zero=False), None, "fit")  # type: ignore[arg-type]
    assert Path(callback.ckpt_path).exists()
    callback.teardown(fake_trainer(), None, "fit")  # type: ignore[arg-type]
    assert not Path(callback.ckpt_path).exists()
    callback.teardown(fake_trainer(), None, "fit")  # type: ignore[arg-type]  # nothing to remove


def test_empty_filename_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"filename=''\) is invalid"):
        OnExceptionCheckpoint(".", filename="")
