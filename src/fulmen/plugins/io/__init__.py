"""Checkpoint IO plugins."""

from fulmen.plugins.io.async_checkpoint_io import AsyncCheckpointIO
from fulmen.plugins.io.checkpoint_io import CheckpointIO, TorchCheckpointIO, XLACheckpointIO

__all__ = ["AsyncCheckpointIO", "CheckpointIO", "TorchCheckpointIO", "XLACheckpointIO"]
