"""The handwritten digits bundled with scikit-learn as a LightningDataModule."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from fulmen import LightningDataModule


class DigitsDataModule(LightningDataModule):
    """Split the 8x8 digits into stratified train/val/test sets, standardised on train only."""

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 42,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def prepare_data(self) -> None:
        # The digits ship with scikit-learn, so there is nothing to download; reading them here
        # fails early, on one process, if the bundled files are missing.
        load_digits()

    def setup(self, stage: str) -> None:
        # fit and test both call setup; split once so the test set never overlaps training.
        if self.train_set is not None:
            return
        features, labels = load_digits(return_X_y=True)
        train_x, rest_x, train_y, rest_y = train_test_split(
            features,
            labels,
            test_size=self.val_fraction + self.test_fraction,
            stratify=labels,
            random_state=self.seed,
        )
        val_x, test_x, val_y, test_y = train_test_split(
            rest_x,
            rest_y,
            test_size=self.test_fraction / (self.val_fraction + self.test_fraction),
            stratify=rest_y,
            random_state=self.seed,
        )
        # Fitting the scaler on the training images alone keeps val/test statistics out of training.
        scaler = StandardScaler().fit(train_x)
        self.train_set = _to_dataset(scaler.transform(train_x), train_y)
        self.val_set = _to_dataset(scaler.transform(val_x), val_y)
        self.test_set = _to_dataset(scaler.transform(test_x), test_y)

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.test_set)

    def _loader(
        self, dataset: TensorDataset | None, shuffle: bool = False
    ) -> DataLoader[tuple[torch.Tensor, ...]]:
        if dataset is None:
            raise RuntimeError("DigitsDataModule.setup() must run before asking for a dataloader.")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


def _to_dataset(features: object, labels: object) -> TensorDataset:
    return TensorDataset(
        torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)
    )
