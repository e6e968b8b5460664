"""`WandbLogger` (Weights & Biases): its constructor only, until the integration lands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fulmen.loggers.logger import Logger
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["WandbLogger"]


class WandbLogger(Logger):
    """Log to Weights & Biases; not supported yet, so building one raises with what to use instead.

    The signature is Lightning's, so that configurations naming it fail with a clear message.

    Example:
        >>> WandbLogger(project="demo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fulmen.utilities.exceptions.MisconfigurationException: `WandbLogger` is not supported yet in ...
    """

    def __new__(
        cls,
        name: str | None = None,
        save_dir: str | Path = ".",
        version: str | None = None,
        offline: bool = False,
        dir: str | Path | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: Literal["all"] | bool = False,
        experiment: Any = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        add_file_policy: Literal["mutable", "immutable"] = "mutable",
        **kwargs: Any,
    ) -> WandbLogger:
        # Raised in __new__ so that no half-built logger exists that a caller could try to use.
        raise MisconfigurationException(
            "`WandbLogger` is not supported yet in fulmen (planned in the logging issue); "
            "use TensorBoardLogger or CSVLogger."
        )
