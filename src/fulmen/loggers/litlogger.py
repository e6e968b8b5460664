"""`LitLogger` (Lightning AI's experiment tracking): its constructor only, until the integration lands."""

from __future__ import annotations

from pathlib import Path

from fulmen.loggers.logger import Logger
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["LitLogger"]


class LitLogger(Logger):
    """Log to Lightning AI's experiment tracking; not supported yet, so building one raises with what to use instead.

    The signature is Lightning's, so that configurations naming it fail with a clear message.

    Example:
        >>> LitLogger()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fulmen.utilities.exceptions.MisconfigurationException: `LitLogger` is not supported yet in ...
    """

    def __new__(
        cls,
        root_dir: str | Path | None = None,
        name: str | None = None,
        teamspace: str | None = None,
        metadata: dict[str, str] | None = None,
        store_step: bool = True,
        log_model: bool = False,
        save_logs: bool = True,
        checkpoint_name: str | None = None,
    ) -> LitLogger:
        # Raised in __new__ so that no half-built logger exists that a caller could try to use.
        raise MisconfigurationException(
            "`LitLogger` is not supported yet in fulmen (planned in the logging issue); "
            "use TensorBoardLogger or CSVLogger."
        )
