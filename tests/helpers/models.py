"""Small models and data for behaviour tests, built for any Lightning-compatible API."""

from __future__ import annotations

from collections import Counter
from types import ModuleType
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset


def regression_data(n: int = 32, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=generator)
    y = x @ torch.linspace(-1, 1, 8).unsqueeze(1) + 0.1 * torch.randn(n, 1, generator=generator)
    return TensorDataset(x, y)


def loader(n: int = 32, batch_size: int = 4, seed: int = 0) -> DataLoader[Any]:
    return DataLoader(regression_data(n, seed), batch_size=batch_size)


def make_counting_model(pl: ModuleType) -> type:
    """A regression model that counts its step calls in `self.counts`."""

    class CountingModel(pl.LightningModule):  # type: ignore[name-defined,misc]
        def __init__(self, lr: float = 0.05, n_train: int = 32, n_val: int = 16) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)
            self.lr = lr
            self.n_train = n_train
            self.n_val = n_val
            self.counts: Counter[str] = Counter()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            self.counts["train"] += 1
            x, y = batch
            loss = torch.nn.functional.mse_loss(self(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.counts["sanity" if self.trainer.sanity_checking else "val"] += 1
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

        def test_step(self, batch: Any, batch_idx: int) -> None:
            self.counts["test"] += 1
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self(x), y))

        def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
            self.counts["predict"] += 1
            return self(batch[0])

        def on_train_epoch_start(self) -> None:
            self.counts["epochs"] += 1

        def on_validation_start(self) -> None:
            if not self.trainer.sanity_checking:
                self.counts["val_runs"] += 1

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

        def train_dataloader(self) -> DataLoader[Any]:
            return loader(self.n_train)

        def val_dataloader(self) -> DataLoader[Any]:
            return loader(self.n_val, seed=1)

        def test_dataloader(self) -> DataLoader[Any]:
            return loader(self.n_val, seed=2)

        def predict_dataloader(self) -> DataLoader[Any]:
            return loader(self.n_val, seed=3)

    return CountingModel


QUIET = dict(
    logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False
)
