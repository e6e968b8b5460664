"""`CometLogger` (Comet): its constructor only, until the integration lands."""

from __future__ import annotations

from typing import Any, Literal

from fulmen.loggers.logger import Logger
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["CometLogger"]


class CometLogger(Logger):
    """Log to Comet; not supported yet, so building one raises with what to use instead.

    The signature is Lightning's, so that configurations naming it fail with a clear message.

    Example:
        >>> CometLogger(project="demo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fulmen.utilities.exceptions.MisconfigurationException: `CometLogger` is not supported yet in ...
    """

    def __new__(
        cls,
        *,
        api_key: str | None = None,
        workspace: str | None = None,
        project: str | None = None,
        experiment_key: str | None = None,
        mode: Literal["get_or_create", "get", "create"] | None = None,
        online: bool | None = None,
        prefix: str | None = None,
        **kwargs: Any,
    ) -> CometLogger:
        # Raised in __new__ so that no half-built logger exists that a caller could try to use.
        raise MisconfigurationException(
            "`CometLogger` is not supported yet in fulmen (planned in the logging issue); "
            "use TensorBoardLogger or CSVLogger."
        )
