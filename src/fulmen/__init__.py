"""fulmen: a PyTorch training framework with Lightning's API.

Port a Lightning script by changing one import: ``import fulmen as pl``.
"""

import importlib
import logging
from typing import Any

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

# `pl.loggers.CSVLogger`, `pl.callbacks.EarlyStopping`... work after `import fulmen as pl`, as with
# Lightning, but each subpackage is imported on first use so that `import fulmen` stays light.
_SUBPACKAGES = frozenset(
    {"accelerators", "callbacks", "core", "loggers", "plugins", "profilers", "strategies",
     "trainer", "tuner", "utilities"}
)  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Trainer", "LightningDataModule", "LightningModule", "Callback", "seed_everything"]
