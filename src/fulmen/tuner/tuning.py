"""`Tuner`: the learning-rate finder and the batch-size finder (planned in the tuning issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fulmen.utilities.exceptions import MisconfigurationException

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer

__all__ = ["Tuner"]


class Tuner:
    """Tune a model's learning rate or batch size with a Trainer."""

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer

    def lr_find(self, *args: Any, **kwargs: Any) -> Any:
        """Find a learning rate: not supported yet."""
        raise MisconfigurationException(
            "Tuner.lr_find is not supported yet in fulmen (it comes with the tuning issue). "
            "Set the learning rate by hand for now."
        )

    def scale_batch_size(self, *args: Any, **kwargs: Any) -> Any:
        """Find the largest batch size that fits: not supported yet."""
        raise MisconfigurationException(
            "Tuner.scale_batch_size is not supported yet in fulmen (it comes with the tuning "
            "issue). Set the batch size by hand for now."
        )
