"""TorchCheckpointIO pushes a large checkpoint to the disk while it is still being written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fulmen.plugins.io import TorchCheckpointIO, checkpoint_io


def large_checkpoint() -> dict[str, torch.Tensor]:
    # Three times the sync interval, so the helper thread syncs while torch.save writes.
    floats = 3 * checkpoint_io._SyncingWriter._SYNC_EVERY // 4
    return {"w": torch.arange(floats, dtype=torch.float32)}


def test_a_large_save_syncs_in_the_background_and_once_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    background: list[int] = []
    final: list[int] = []
    monkeypatch.setattr(checkpoint_io, "_fdatasync", lambda fd: background.append(fd))
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        final.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(checkpoint_io.os, "fsync", recording_fsync)
    checkpoint = large_checkpoint()
    TorchCheckpointIO().save_checkpoint(checkpoint, tmp_path / "a.ckpt")
    assert len(background) >= 1
    assert len(final) == 2  # the file, then its folder
    assert torch.equal(
        TorchCheckpointIO().load_checkpoint(tmp_path / "a.ckpt")["w"], checkpoint["w"]
    )


def test_a_failed_background_sync_fails_the_save_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")

    def failing_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    # The kernel reports a write-back error once per open file: the final fsync would not see
    # it again, so the save must raise the helper's error itself.
    monkeypatch.setattr(checkpoint_io, "_fdatasync", failing_sync)
    with pytest.raises(OSError, match="Input/output error"):
        io.save_checkpoint(large_checkpoint(), tmp_path / "a.ckpt")
    assert os.listdir(tmp_path) == ["a.ckpt"]
    assert io.load_checkpoint(tmp_path / "a.ckpt") == {"epoch": 1}
