"""An MLP classifier whose logged metrics are correct across processes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from fulmen import LightningModule

Batch = tuple[Tensor, Tensor]


class Classifier(LightningModule):
    """Classify `num_features`-dimensional points into `num_classes` classes."""

    def __init__(
        self, num_features: int = 20, num_classes: int = 4, hidden_dim: int = 64, lr: float = 1e-2
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_classes)
        )
        # A torchmetrics Metric sums its counts over all processes before computing, so val_acc
        # is the accuracy over the whole validation set, not an average of per-process values.
        self.val_acc = MulticlassAccuracy(num_classes=num_classes)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.net(x)
        return logits

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        # Each process logs its own loss; that is fine for a progress bar.
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        # sync_dist=True averages the value over the processes before it is recorded.
        self.log("val_loss", F.cross_entropy(logits, y), sync_dist=True, prog_bar=True)
        self.val_acc(logits, y)
        self.log("val_acc", self.val_acc, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
