"""fulmen: a PyTorch training framework with Lightning's API.

Port a Lightning script by changing one import: ``import fulmen as pl``.
"""

import logging

from fulmen.callbacks.callback import Callback
from fulmen.core.datamodule import LightningDataModule
from fulmen.core.module import LightningModule
from fulmen.trainer.trainer import Trainer
from fulmen.utilities.seed import seed_everything

__version__ = "0.1.0"

# The model summary and a few one-line notices go through the "fulmen" logger; show them on
# stderr by default, as Lightning does, unless the user configured logging themselves.
_logger = logging.getLogger(__name__)
if not _logger.handlers:
    _logger.addHandler(logging.StreamHandler())
    _logger.setLevel(logging.INFO)
    _logger.propagate = False

__all__ = ["Trainer", "LightningDataModule", "LightningModule", "Callback", "seed_everything"]
