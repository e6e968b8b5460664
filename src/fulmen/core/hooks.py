"""The hook catalogue: every hook a LightningModule or LightningDataModule may override.

Each hook is a documented no-op (or Lightning's default behaviour) so that the trainer can call
any of them without checking first. The order in which the trainer calls them is pinned by
``tests/behaviour/test_hook_order.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from fulmen.utilities.apply_func import move_data_to_device
from fulmen.utilities.exceptions import MisconfigurationException

if TYPE_CHECKING:
    from fulmen.utilities.types import EVAL_DATALOADERS, STEP_OUTPUT, TRAIN_DATALOADERS


class ModelHooks:
    """Hooks of the training, evaluation and prediction lifecycle."""

    def on_fit_start(self) -> None:
        """Called at the very beginning of fit, after setup and configure_optimizers."""

    def on_fit_end(self) -> None:
        """Called at the very end of fit."""

    def on_train_start(self) -> None:
        """Called at the beginning of training, after the sanity check."""

    def on_train_end(self) -> None:
        """Called at the end of training, before the logger is finalized."""

    def on_validation_start(self) -> None:
        """Called at the beginning of validation."""

    def on_validation_end(self) -> None:
        """Called at the end of validation."""

    def on_test_start(self) -> None:
        """Called at the beginning of testing."""

    def on_test_end(self) -> None:
        """Called at the end of testing."""

    def on_predict_start(self) -> None:
        """Called at the beginning of predicting."""

    def on_predict_end(self) -> None:
        """Called at the end of predicting."""

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        """Called before the training step of a batch. Return -1 to skip the rest of the epoch."""
        return None

    def on_train_batch_end(self, outputs: STEP_OUTPUT, batch: Any, batch_idx: int) -> None:
        """Called after the optimizer step of a batch; `outputs` is the step output as a dict."""

    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Called before `validation_step`."""

    def on_validation_batch_end(
        self, outputs: STEP_OUTPUT, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Called after `validation_step` with what it returned."""

    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Called before `test_step`."""

    def on_test_batch_end(
        self, outputs: STEP_OUTPUT, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Called after `test_step` with what it returned."""

    def on_predict_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Called before `predict_step`."""

    def on_predict_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Called after `predict_step` with what it returned."""

    def on_validation_model_zero_grad(self) -> None:
        """Called before validation inside fit: drop gradients so they do not hold memory."""
        self.zero_grad(set_to_none=True)  # type: ignore[attr-defined]

    def on_validation_model_eval(self) -> None:
        """Put the model in eval mode before validation."""
        self.trainer.model.eval()  # type: ignore[attr-defined]

    def on_validation_model_train(self) -> None:
        """Put the model back in train mode after validation."""
        self.trainer.model.train()  # type: ignore[attr-defined]

    def on_test_model_eval(self) -> None:
        """Put the model in eval mode before testing."""
        self.trainer.model.eval()  # type: ignore[attr-defined]

    def on_test_model_train(self) -> None:
        """Put the model back in train mode after testing."""
        self.trainer.model.train()  # type: ignore[attr-defined]

    def on_predict_model_eval(self) -> None:
        """Put the model in eval mode before predicting."""
        self.trainer.model.eval()  # type: ignore[attr-defined]

    def on_train_epoch_start(self) -> None:
        """Called at the start of each training epoch."""

    def on_train_epoch_end(self) -> None:
        """Called at the end of each training epoch, before monitoring callbacks run."""

    def on_validation_epoch_start(self) -> None:
        """Called at the start of each validation epoch."""

    def on_validation_epoch_end(self) -> None:
        """Called at the end of each validation epoch."""

    def on_test_epoch_start(self) -> None:
        """Called at the start of the test epoch."""

    def on_test_epoch_end(self) -> None:
        """Called at the end of the test epoch."""

    def on_predict_epoch_start(self) -> None:
        """Called at the start of the predict epoch."""

    def on_predict_epoch_end(self) -> None:
        """Called at the end of the predict epoch."""

    def on_before_zero_grad(self, optimizer: Optimizer) -> None:
        """Called before `optimizer_zero_grad`."""

    def on_before_backward(self, loss: Tensor) -> None:
        """Called before `backward`."""

    def on_after_backward(self) -> None:
        """Called after `backward` and before the optimizer step; gradients are available."""

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Called before the optimizer steps (after AMP unscaling, before clipping)."""

    def configure_model(self) -> None:
        """Create layers here when they should be built directly on the target device."""


class DataHooks:
    """Hooks that provide and move data; shared by LightningModule and LightningDataModule."""

    prepare_data_per_node: bool = True
    allow_zero_length_dataloader_with_multiple_devices: bool = False

    def prepare_data(self) -> None:
        """Download or write data once per node. Do not set state here: it runs on one process."""

    def setup(self, stage: str) -> None:
        """Build datasets and layers; runs on every process. `stage` is fit/validate/test/predict."""

    def teardown(self, stage: str) -> None:
        """Release what `setup` created."""

    def train_dataloader(self) -> TRAIN_DATALOADERS:
        """Return the training dataloader(s)."""
        raise MisconfigurationException(
            "`train_dataloader` must be implemented to be used with `Trainer.fit`."
        )

    def val_dataloader(self) -> EVAL_DATALOADERS:
        """Return the validation dataloader(s)."""
        raise MisconfigurationException(
            "`val_dataloader` must be implemented to be used for validation."
        )

    def test_dataloader(self) -> EVAL_DATALOADERS:
        """Return the test dataloader(s)."""
        raise MisconfigurationException(
            "`test_dataloader` must be implemented to be used with `Trainer.test`."
        )

    def predict_dataloader(self) -> EVAL_DATALOADERS:
        """Return the prediction dataloader(s)."""
        raise MisconfigurationException(
            "`predict_dataloader` must be implemented to be used with `Trainer.predict`."
        )

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Move a batch to `device`; tensors inside lists, tuples, dicts and dataclasses move."""
        return move_data_to_device(batch, device)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Alter the batch before it is moved to the device; must return the batch."""
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Alter the batch after it is moved to the device; must return the batch."""
        return batch


class CheckpointHooks:
    """Hooks to add to, or read from, the checkpoint dict."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Called when a checkpoint is loaded, before the state is restored."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Called when a checkpoint is saved; add entries to `checkpoint` in place."""
