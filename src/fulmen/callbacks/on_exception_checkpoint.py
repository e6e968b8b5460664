"""`OnExceptionCheckpoint`: save a checkpoint when a run is ended by an exception."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fulmen.callbacks.checkpoint import Checkpoint

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer

__all__ = ["OnExceptionCheckpoint"]


class OnExceptionCheckpoint(Checkpoint):
    """Save `<dirpath>/<filename>.ckpt` when fit is ended by an exception (Ctrl-C included).

    The file is removed again when a later run finishes normally, so its presence means "the last
    run crashed here"; `fit(ckpt_path="last")` considers it when looking for a place to resume.

    Args:
        dirpath: Directory for the file. Needed up front: an exception can come at any moment,
            even before `setup` could resolve a default.
        filename: File name without the extension.

    Example:
        >>> OnExceptionCheckpoint("ckpts").ckpt_path == os.path.join("ckpts", "on_exception.ckpt")
        True
    """

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: str | os.PathLike[str], filename: str = "on_exception") -> None:
        if not filename:
            raise ValueError(
                f"OnExceptionCheckpoint(filename={filename!r}) is invalid: expected a non-empty "
                "file name (without the extension)."
            )
        self.dirpath = os.fspath(dirpath)
        self.filename = filename

    @property
    def ckpt_path(self) -> str:
        """Where the checkpoint is written."""
        return os.path.join(self.dirpath, self.filename + self.FILE_EXTENSION)

    def on_exception(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        """Save the current state, overwriting the file of an earlier crash."""
        trainer.save_checkpoint(self.ckpt_path)

    def teardown(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        """Remove the file: the run ended normally, so there is no crash to resume from."""
        if not trainer.is_global_zero:
            return
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(self.ckpt_path)
        if fs.exists(path):
            fs.rm(path)
