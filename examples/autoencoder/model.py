"""A fully connected autoencoder that compresses 8x8 digits to a small code and back."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fulmen import LightningModule

Batch = tuple[Tensor, Tensor]


class Autoencoder(LightningModule):
    """Reconstruct (1, 8, 8) images through a `code_dim`-dimensional bottleneck."""

    def __init__(
        self, hidden_dim: int = 128, code_dim: int = 8, lr: float = 2e-3, num_images: int = 16
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, code_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, 64),
            nn.Sigmoid(),  # pixels live in [0, 1]
            nn.Unflatten(1, (1, 8, 8)),
        )
        # Shows input and output sizes in the model summary.
        self.example_input_array = torch.zeros(2, 1, 8, 8)
        self._shown: Tensor | None = None

    def forward(self, images: Tensor) -> Tensor:
        reconstruction: Tensor = self.decoder(self.encoder(images))
        return reconstruction

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        images, _ = batch
        loss = F.mse_loss(self(images), images)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        images, _ = batch
        loss = F.mse_loss(self(images), images)
        self.log("val_loss", loss, prog_bar=True)
        if batch_idx == 0:
            # Keep the same first images every epoch, so the pictures show the progress.
            self._shown = images[: self.hparams.num_images]

    def on_validation_epoch_end(self) -> None:
        if self._shown is None or self.logger is None or self.trainer.sanity_checking:
            return
        originals = self._shown
        reconstructions = self(originals)
        # TensorBoard tiles the batch row by row: originals in the top half, reconstructions below.
        pictures = torch.cat([originals, reconstructions]).clamp(0, 1)
        self.logger.experiment.add_images(
            "reconstructions", pictures, global_step=self.global_step, dataformats="NCHW"
        )
        self._shown = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
