"""A synthetic classification task: points whose class depends on a fixed random projection."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from fulmen import LightningDataModule


def make_dataset(size: int, num_features: int, num_classes: int, seed: int) -> TensorDataset:
    """Return `size` labelled points; the labelling rule is the same for every seed."""
    rule = torch.randn(num_features, num_classes, generator=torch.Generator().manual_seed(0))
    features = torch.randn(size, num_features, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(features, (features @ rule).argmax(dim=1))


class SyntheticDataModule(LightningDataModule):
    """Serve seeded train and validation sets; under DDP each process gets its own shard."""

    def __init__(
        self,
        num_features: int = 20,
        num_classes: int = 4,
        num_train: int = 4096,
        num_val: int = 1024,
        batch_size: int = 64,
        seed: int = 11,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str) -> None:
        # Runs in every process. The data is generated from a seed, so every process builds the
        # same sets; the Trainer's DistributedSampler then gives each process its own share.
        hp = self.hparams
        self.train_set = make_dataset(hp.num_train, hp.num_features, hp.num_classes, hp.seed)
        self.val_set = make_dataset(hp.num_val, hp.num_features, hp.num_classes, hp.seed + 1)

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.val_set)

    def _loader(
        self, dataset: TensorDataset | None, shuffle: bool = False
    ) -> DataLoader[tuple[torch.Tensor, ...]]:
        if dataset is None:
            raise RuntimeError("SyntheticDataModule.setup() must run before asking for a loader.")
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=shuffle)
