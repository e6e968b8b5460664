"""A toy distribution for GANs: a ring of Gaussian clusters in the plane (nothing to download)."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, TensorDataset

from fulmen import LightningDataModule


def ring_modes(num_modes: int, radius: float) -> torch.Tensor:
    """Return the (num_modes, 2) centres of the clusters, evenly spaced on a circle."""
    angles = torch.arange(num_modes, dtype=torch.float32) * (2 * math.pi / num_modes)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


class RingDataModule(LightningDataModule):
    """Serve `num_samples` points drawn around the ring's clusters, with a fixed seed."""

    def __init__(
        self,
        num_modes: int = 8,
        radius: float = 2.0,
        mode_std: float = 0.05,
        num_samples: int = 8192,
        batch_size: int = 128,
        seed: int = 3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.dataset: TensorDataset | None = None

    def setup(self, stage: str) -> None:
        if self.dataset is not None:
            return
        hp = self.hparams
        generator = torch.Generator().manual_seed(hp.seed)
        modes = ring_modes(hp.num_modes, hp.radius)
        which = torch.randint(hp.num_modes, (hp.num_samples,), generator=generator)
        noise = hp.mode_std * torch.randn(hp.num_samples, 2, generator=generator)
        self.dataset = TensorDataset(modes[which] + noise)

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        if self.dataset is None:
            raise RuntimeError("RingDataModule.setup() must run before asking for a loader.")
        return DataLoader(self.dataset, batch_size=self.hparams.batch_size, shuffle=True)
