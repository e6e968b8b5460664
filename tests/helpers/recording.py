"""Models, datamodules and callbacks that record every hook call, for any Lightning-compatible API.

The same factory builds recorders for fulmen and, when installed, for Lightning itself, so the
compatibility tests can run one script against both and compare the lists. A call is recorded
when it starts (entry order), as ``"name"`` for the module, ``"Callback.name"`` for callbacks and
``"DataModule.name"`` for the datamodule.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

MODULE_HOOKS = [
    "configure_callbacks",
    "prepare_data",
    "setup",
    "teardown",
    "configure_model",
    "configure_optimizers",
    "on_fit_start",
    "on_fit_end",
    "zero_grad",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "predict_dataloader",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "training_step",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "validation_step",
    "on_test_start",
    "on_test_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "test_step",
    "on_predict_start",
    "on_predict_end",
    "on_predict_epoch_start",
    "on_predict_epoch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
    "predict_step",
    "on_validation_model_eval",
    "on_validation_model_train",
    "on_validation_model_zero_grad",
    "on_test_model_eval",
    "on_test_model_train",
    "on_predict_model_eval",
    "on_before_zero_grad",
    "optimizer_zero_grad",
    "on_before_backward",
    "backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "configure_gradient_clipping",
    "clip_gradients",
    "optimizer_step",
    "lr_scheduler_step",
    "on_save_checkpoint",
    "on_load_checkpoint",
]
CALLBACK_HOOKS = [
    "setup",
    "teardown",
    "on_fit_start",
    "on_fit_end",
    "on_sanity_check_start",
    "on_sanity_check_end",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_start",
    "on_test_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_start",
    "on_predict_end",
    "on_predict_epoch_start",
    "on_predict_epoch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
    "on_before_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_save_checkpoint",
    "on_load_checkpoint",
    "state_dict",
    "load_state_dict",
    "on_exception",
]
DATAMODULE_HOOKS = [
    "prepare_data",
    "setup",
    "teardown",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "predict_dataloader",
    "state_dict",
    "load_state_dict",
]


class SquareDataset(Dataset[torch.Tensor]):
    """`length` random 32-dim vectors, fixed by a seed."""

    def __init__(self, length: int = 4, seed: int = 0) -> None:
        self.data = torch.randn(length, 32, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.data[index]


def _recorder(base: type, hooks: list[str], calls: list[str], prefix: str) -> type:
    def wrap(name: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(prefix + name)
            return getattr(super(cls, self), name)(*args, **kwargs)

        method.__name__ = name
        return method

    namespace = {name: wrap(name) for name in hooks if hasattr(base, name)}
    cls = type(f"Recording{base.__name__}", (base,), namespace)
    return cls


def make_recorders(pl: ModuleType, calls: list[str]) -> tuple[type, type, type]:
    """Return (ModelClass, CallbackClass, DataModuleClass) that append hook names to `calls`."""

    class Model(pl.LightningModule):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(32, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

        def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            return self(batch).sum()

        def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            self.log("val_loss", self(batch).sum())

        def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            self.log("test_loss", self(batch).sum())

        def predict_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            return self(batch)

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)]

        def train_dataloader(self) -> DataLoader[torch.Tensor]:
            return DataLoader(SquareDataset(), batch_size=2)

        def val_dataloader(self) -> DataLoader[torch.Tensor]:
            return DataLoader(SquareDataset(seed=1), batch_size=2)

        def test_dataloader(self) -> DataLoader[torch.Tensor]:
            return DataLoader(SquareDataset(seed=2), batch_size=2)

        def predict_dataloader(self) -> DataLoader[torch.Tensor]:
            return DataLoader(SquareDataset(seed=3), batch_size=2)

    class DataModule(pl.LightningDataModule):  # type: ignore[name-defined,misc]
        def train_dataloader(self) -> DataLoader[torch.Tensor]:
            return DataLoader(SquareDataset(), batch_size=2)

        def val_dataloader(self) -> DataLoader[torch.Tensor]:
            return DataLoader(SquareDataset(seed=1), batch_size=2)

        def test_dataloader(self) -> DataLoader[torch.Tensor]:
            return DataLoader(SquareDataset(seed=2), batch_size=2)

        def predict_dataloader(self) -> DataLoader[torch.Tensor]:
            return DataLoader(SquareDataset(seed=3), batch_size=2)

        def state_dict(self) -> dict[str, Any]:
            return {"seen": 1}

    model_cls = _recorder(Model, MODULE_HOOKS, calls, "")
    callback_cls = _recorder(pl.Callback, CALLBACK_HOOKS, calls, "Callback.")
    datamodule_cls = _recorder(DataModule, DATAMODULE_HOOKS, calls, "DataModule.")
    return model_cls, callback_cls, datamodule_cls


def trainer_kwargs(tmp_path: Any, **overrides: Any) -> dict[str, Any]:
    """Trainer arguments shared by the hook-order runs: quiet, 1 epoch, 2 train and 2 val batches."""
    kwargs: dict[str, Any] = dict(
        default_root_dir=str(tmp_path),
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    kwargs.update(overrides)
    return kwargs
