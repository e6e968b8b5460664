"""`BasePredictionWriter`: write predictions out as they are made instead of keeping them in memory."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["BasePredictionWriter", "WriteInterval"]


class WriteInterval(str, Enum):
    """When a `BasePredictionWriter` writes: after each batch, at the epoch end, or both."""

    BATCH = "batch"
    EPOCH = "epoch"
    BATCH_AND_EPOCH = "batch_and_epoch"

    @property
    def on_batch(self) -> bool:
        return self in (WriteInterval.BATCH, WriteInterval.BATCH_AND_EPOCH)

    @property
    def on_epoch(self) -> bool:
        return self in (WriteInterval.EPOCH, WriteInterval.BATCH_AND_EPOCH)


class BasePredictionWriter(Callback):
    """Base class for writing predictions; override the method(s) that `write_interval` needs.

    `write_on_batch_end` runs after each predict batch; `write_on_epoch_end` gets every batch's
    prediction at the end (a list per dataloader when there are several, else one list).
    `batch_indices` are the sample indices of each batch, empty when the dataset has no indices.

    Example:
        >>> import torch
        >>> class TorchWriter(BasePredictionWriter):
        ...     def __init__(self, output_dir):
        ...         super().__init__(write_interval="batch")
        ...         self.output_dir = output_dir
        ...     def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices,
        ...                            batch, batch_idx, dataloader_idx):
        ...         torch.save(prediction, f"{self.output_dir}/{dataloader_idx}_{batch_idx}.pt")
        >>> TorchWriter("predictions").interval.on_batch
        True
    """

    def __init__(self, write_interval: str = "batch") -> None:
        if write_interval not in [interval.value for interval in WriteInterval]:
            raise MisconfigurationException(
                f"BasePredictionWriter(write_interval={write_interval!r}) is invalid: expected "
                "'batch', 'epoch' or 'batch_and_epoch'."
            )
        self.interval = WriteInterval(write_interval)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Fail before predicting, not after the first batch or, worse, after the whole epoch.
        if stage != "predict":
            return
        missing = []
        if self.interval.on_batch and not _overrides(self, "write_on_batch_end"):
            missing.append("write_on_batch_end()")
        if self.interval.on_epoch and not _overrides(self, "write_on_epoch_end"):
            missing.append("write_on_epoch_end()")
        if missing:
            raise MisconfigurationException(
                f"{type(self).__name__}(write_interval={self.interval.value!r}) must override "
                f"{' and '.join(missing)}, which it does not."
            )

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Write the prediction of one batch; override when `write_interval` includes "batch"."""
        raise NotImplementedError(f"{type(self).__name__} does not override write_on_batch_end().")

    def write_on_epoch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Write every prediction at the end; override when `write_interval` includes "epoch"."""
        raise NotImplementedError(f"{type(self).__name__} does not override write_on_epoch_end().")

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.interval.on_batch:
            return
        batch_indices = _epoch_batch_indices(trainer)
        loader_indices = (
            batch_indices[dataloader_idx] if dataloader_idx < len(batch_indices) else []
        )
        indices = loader_indices[batch_idx] if batch_idx < len(loader_indices) else []
        self.write_on_batch_end(
            trainer, pl_module, outputs, indices, batch, batch_idx, dataloader_idx
        )

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.interval.on_epoch:
            return
        predictions = trainer.predict_predictions
        batch_indices = _epoch_batch_indices(trainer) or [[] for _ in predictions]
        # One dataloader gets a flat list of batch predictions, as `trainer.predict` returns.
        shown = predictions[0] if len(predictions) == 1 else predictions
        self.write_on_epoch_end(trainer, pl_module, shown, batch_indices)


def _overrides(writer: BasePredictionWriter, method: str) -> bool:
    return getattr(type(writer), method) is not getattr(BasePredictionWriter, method)


def _epoch_batch_indices(trainer: Trainer) -> list[list[list[int]]]:
    # Per dataloader, per batch: the dataset indices drawn. The trainer records them only where
    # the sampler yields indices (map-style datasets); elsewhere writers get empty lists.
    indices: list[list[list[int]]] | None = getattr(trainer, "predict_batch_indices", None)
    return [] if indices is None else indices
