"""The user's side of fulmen: LightningModule and LightningDataModule."""

from fulmen.core.datamodule import LightningDataModule
from fulmen.core.module import LightningModule

__all__ = ["LightningDataModule", "LightningModule"]
