"""fulmen: a PyTorch training framework with Lightning's API.

Port a Lightning script by changing one import: ``import fulmen as pl``.
"""

from fulmen.callbacks.callback import Callback
from fulmen.core.datamodule import LightningDataModule
from fulmen.core.module import LightningModule
from fulmen.trainer.trainer import Trainer
from fulmen.utilities.seed import seed_everything

__version__ = "0.1.0"

__all__ = ["Trainer", "LightningDataModule", "LightningModule", "Callback", "seed_everything"]
