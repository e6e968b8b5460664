"""Small random datasets and models for tests, bug reports and examples (Lightning's demo classes).

`BoringModel` is one linear layer (32 -> 2) trained to output ones on random inputs: it runs in
milliseconds and exercises every step of the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from fulmen.core.datamodule import LightningDataModule
from fulmen.core.module import LightningModule
from fulmen.utilities.types import STEP_OUTPUT

__all__ = [
    "BoringDataModule",
    "BoringDataModuleNoLen",
    "BoringModel",
    "DemoModel",
    "ManualOptimBoringModel",
    "Net",
    "RandomDataset",
    "RandomDictDataset",
    "RandomIterableDataset",
    "RandomIterableDatasetWithLen",
]


class RandomDataset(Dataset[Tensor]):
    """Hold `length` random vectors of `size` features, drawn once from a standard normal.

    Example:
        >>> dataset = RandomDataset(32, 64)
        >>> len(dataset), dataset[0].shape
        (64, torch.Size([32]))
    """

    def __init__(self, size: int, length: int) -> None:
        self.len = length
        self.data = torch.randn(length, size)

    def __getitem__(self, index: int) -> Tensor:
        return self.data[index]

    def __len__(self) -> int:
        return self.len


class RandomDictDataset(Dataset[dict[str, Tensor]]):
    """Hold `length` random vectors; each item is `{"a": x, "b": x + 2}`.

    Example:
        >>> item = RandomDictDataset(4, 8)[0]
        >>> sorted(item), bool(torch.allclose(item["b"] - item["a"], torch.full((4,), 2.0)))
        (['a', 'b'], True)
    """

    def __init__(self, size: int, length: int) -> None:
        self.len = length
        self.data = torch.randn(length, size)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        a = self.data[index]
        return {"a": a, "b": a + 2}

    def __len__(self) -> int:
        return self.len


class RandomIterableDataset(IterableDataset[Tensor]):
    """Yield `count` fresh random vectors of `size` features; it defines no length.

    Example:
        >>> [x.shape for x in RandomIterableDataset(3, 2)]
        [torch.Size([3]), torch.Size([3])]
    """

    def __init__(self, size: int, count: int) -> None:
        self.count = count
        self.size = size

    def __iter__(self) -> Iterator[Tensor]:
        for _ in range(self.count):
            yield torch.randn(self.size)


class RandomIterableDatasetWithLen(IterableDataset[Tensor]):
    """Yield `count` fresh random vectors of `size` features, and report `count` as its length.

    Example:
        >>> len(RandomIterableDatasetWithLen(3, 5))
        5
    """

    def __init__(self, size: int, count: int) -> None:
        self.count = count
        self.size = size

    def __iter__(self) -> Iterator[Tensor]:
        for _ in range(len(self)):
            yield torch.randn(self.size)

    def __len__(self) -> int:
        return self.count


class BoringModel(LightningModule):
    """Fit one linear layer (32 -> 2) so that it outputs ones; the smallest complete module.

    Each step returns the mean squared error against ones: `training_step` as `{"loss": loss}`,
    `validation_step` as `{"x": loss}`, `test_step` as `{"y": loss}`. Nothing is logged. Each
    dataloader serves `RandomDataset(32, 64)` one sample per batch. Override what a test needs.

    Example:
        >>> model = BoringModel()
        >>> model(torch.zeros(4, 32)).shape
        torch.Size([4, 2])
        >>> sorted(model.training_step(torch.zeros(1, 32), 0))
        ['loss']
    """

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(32, 2)

    def forward(self, x: Tensor) -> Tensor:
        output: Tensor = self.layer(x)
        return output

    def loss(self, preds: Tensor, labels: Tensor | None = None) -> Tensor:
        """Return the mean squared error of `preds` against `labels` (default: ones)."""
        if labels is None:
            labels = torch.ones_like(preds)
        return F.mse_loss(preds, labels)

    def step(self, batch: Any) -> Tensor:
        """Return the loss of the model's output on `batch`."""
        return self.loss(self(batch))

    def training_step(self, batch: Any, batch_idx: int) -> STEP_OUTPUT:
        return {"loss": self.step(batch)}

    def validation_step(self, batch: Any, batch_idx: int) -> STEP_OUTPUT:
        return {"x": self.step(batch)}

    def test_step(self, batch: Any, batch_idx: int) -> STEP_OUTPUT:
        return {"y": self.step(batch)}

    def configure_optimizers(self) -> tuple[list[Optimizer], list[LRScheduler]]:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
        return [optimizer], [scheduler]

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(RandomDataset(32, 64))

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(RandomDataset(32, 64))

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(RandomDataset(32, 64))

    def predict_dataloader(self) -> DataLoader[Any]:
        return DataLoader(RandomDataset(32, 64))


class ManualOptimBoringModel(BoringModel):
    """`BoringModel` with manual optimization: `training_step` steps its optimizer itself.

    Example:
        >>> ManualOptimBoringModel().automatic_optimization
        False
    """

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> STEP_OUTPUT:
        optimizer = self.optimizers()
        assert isinstance(optimizer, Optimizer)
        loss = self.step(batch)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return loss


class BoringDataModule(LightningDataModule):
    """Split 256 random vectors of 32 features into train, val, test and predict sets of 64.

    `setup(stage)` creates only the subsets that stage needs.

    Example:
        >>> dm = BoringDataModule()
        >>> dm.setup("fit")
        >>> len(dm.train_dataloader()), len(dm.val_dataloader())
        (64, 64)
    """

    def __init__(self) -> None:
        super().__init__()
        self.random_full = RandomDataset(32, 64 * 4)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.random_train = Subset(self.random_full, range(0, 64))
        if stage in ("fit", "validate"):
            self.random_val = Subset(self.random_full, range(64, 128))
        if stage == "test":
            self.random_test = Subset(self.random_full, range(128, 192))
        if stage == "predict":
            self.random_predict = Subset(self.random_full, range(192, 256))

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.random_train)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.random_val)

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.random_test)

    def predict_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.random_predict)


class BoringDataModuleNoLen(LightningDataModule):
    """Like `BoringDataModule`, but every dataloader is over an iterable dataset without length.

    Example:
        >>> dm = BoringDataModuleNoLen()
        >>> dm.setup("fit")
        >>> sum(1 for _ in dm.val_dataloader())
        128
    """

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.random_train = RandomIterableDataset(32, 512)
        if stage in ("fit", "validate"):
            self.random_val = RandomIterableDataset(32, 128)
        if stage == "test":
            self.random_test = RandomIterableDataset(32, 256)
        if stage == "predict":
            self.random_predict = RandomIterableDataset(32, 64)

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.random_train)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.random_val)

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.random_test)

    def predict_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.random_predict)


class DemoModel(LightningModule):
    """One linear layer from 32 flattened features to `out_dim`, with ReLU; trained with Adam.

    Its training loss is the sum of the outputs, so it learns nothing useful: it is a load for
    examples and benchmarks.

    Example:
        >>> model = DemoModel(out_dim=3)
        >>> model(torch.zeros(2, 4, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(self, out_dim: int = 10, learning_rate: float = 0.02) -> None:
        super().__init__()
        self.l1 = nn.Linear(32, out_dim)
        self.learning_rate = learning_rate

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.l1(x.view(x.size(0), -1)))

    def training_step(self, batch: Any, batch_idx: int) -> STEP_OUTPUT:
        output: Tensor = self(batch)
        return output.sum()

    def configure_optimizers(self) -> Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class Net(nn.Module):
    """A small convolutional classifier for 28x28 one-channel images (MNIST), returning log-probabilities.

    Example:
        >>> Net()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)
