"""The 8x8 handwritten digits bundled with scikit-learn, as images with pixel values in [0, 1]."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset, random_split

from fulmen import LightningDataModule


class DigitImagesDataModule(LightningDataModule):
    """Serve the digits as (1, 8, 8) image tensors; the labels are kept but not needed to train."""

    def __init__(
        self, batch_size: int = 64, num_workers: int = 0, val_fraction: float = 0.15, seed: int = 7
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.seed = seed
        self.train_set: torch.utils.data.Dataset[tuple[torch.Tensor, ...]] | None = None
        self.val_set: torch.utils.data.Dataset[tuple[torch.Tensor, ...]] | None = None

    def prepare_data(self) -> None:
        # Nothing to download; reading the bundled files here fails early if they are missing.
        load_digits()

    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        digits = load_digits()
        # The bundled pixels are integers 0-16; scale to [0, 1] so a sigmoid output can match them.
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.as_tensor(digits.target, dtype=torch.long)
        dataset = TensorDataset(images, labels)
        val_size = int(len(dataset) * self.val_fraction)
        self.train_set, self.val_set = random_split(
            dataset,
            [len(dataset) - val_size, val_size],
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.val_set)

    def _loader(
        self,
        dataset: torch.utils.data.Dataset[tuple[torch.Tensor, ...]] | None,
        shuffle: bool = False,
    ) -> DataLoader[tuple[torch.Tensor, ...]]:
        if dataset is None:
            raise RuntimeError("DigitImagesDataModule.setup() must run before asking for a loader.")
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers
        )
