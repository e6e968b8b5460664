"""XLA (TPU) runtime: not supported by fulmen."""

from __future__ import annotations

from typing import Any

from fulmen.plugins.environments.lightning import LightningEnvironment
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["XLAEnvironment"]


class XLAEnvironment(LightningEnvironment):
    """Refuse to build: fulmen does not run on TPUs (the name exists for Lightning's imports).

    Example:
        >>> XLAEnvironment()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fulmen.utilities.exceptions.MisconfigurationException: XLAEnvironment is not supported ...
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(
            "XLAEnvironment is not supported by fulmen, which trains on CPUs and CUDA GPUs only. "
            "Remove it from `Trainer(plugins=...)`."
        )
