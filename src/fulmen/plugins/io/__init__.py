"""Checkpoint IO plugins."""

from fulmen.plugins.io.checkpoint_io import (
    AsyncCheckpointIO,
    CheckpointIO,
    TorchCheckpointIO,
    XLACheckpointIO,
)

__all__ = ["AsyncCheckpointIO", "CheckpointIO", "TorchCheckpointIO", "XLACheckpointIO"]
