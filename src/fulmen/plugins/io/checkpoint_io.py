"""Where checkpoint dicts are written and read: local disks or any fsspec URL."""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from fulmen.core.saving import load_checkpoint_file
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["AsyncCheckpointIO", "CheckpointIO", "TorchCheckpointIO", "XLACheckpointIO"]


class CheckpointIO(ABC):
    """Saves, loads and removes checkpoint files."""

    @abstractmethod
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` to `path`."""

    @abstractmethod
    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read the checkpoint at `path`."""

    @abstractmethod
    def remove_checkpoint(self, path: str | Path) -> None:
        """Delete the checkpoint at `path`."""

    def teardown(self) -> None:
        """Finish pending work (for example background writes)."""


class TorchCheckpointIO(CheckpointIO):
    """`torch.save`/`torch.load` through fsspec; local files are replaced atomically."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                "TorchCheckpointIO.save_checkpoint(storage_options=...) is not used by this "
                f"plugin; got {storage_options!r}. Write a custom CheckpointIO to use it."
            )
        import fsspec

        fs, fs_path = fsspec.core.url_to_fs(str(path))
        fs.makedirs(fs._parent(fs_path), exist_ok=True)
        if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
            _atomic_local_save(checkpoint, fs_path)
        else:
            with fs.open(fs_path, "wb") as stream:
                torch.save(checkpoint, stream)

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: str | Path) -> None:
        import fsspec

        fs, fs_path = fsspec.core.url_to_fs(str(path))
        if fs.exists(fs_path):
            fs.rm(fs_path, recursive=True)


def _atomic_local_save(checkpoint: dict[str, Any], path: str) -> None:
    # A crash mid-write must leave the old file or the new one, never a truncated one: write a
    # temporary file in the same folder (a rename is atomic only within one filesystem), make it
    # durable, then rename it over the target.
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as stream:
            torch.save(checkpoint, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class AsyncCheckpointIO(CheckpointIO):
    """Background checkpoint writing: not supported yet (it comes with the checkpoint issue)."""

    def __init__(self, checkpoint_io: CheckpointIO | None = None) -> None:
        raise MisconfigurationException(
            "AsyncCheckpointIO is not supported yet in fulmen (planned with the checkpoint "
            "issue); checkpoints are written synchronously and atomically."
        )

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        raise NotImplementedError  # unreachable: construction raises

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError  # unreachable: construction raises

    def remove_checkpoint(self, path: str | Path) -> None:
        raise NotImplementedError  # unreachable: construction raises


class XLACheckpointIO(TorchCheckpointIO):
    """XLA/TPU checkpoint IO: not supported."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException("XLACheckpointIO (TPU) is not supported by fulmen.")
