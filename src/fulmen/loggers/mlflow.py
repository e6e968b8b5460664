"""`MLFlowLogger` (MLflow): its constructor only, until the integration lands."""

from __future__ import annotations

from typing import Any, Literal

from fulmen.loggers.logger import Logger
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["MLFlowLogger"]


class MLFlowLogger(Logger):
    """Log to MLflow; not supported yet, so building one raises with what to use instead.

    The signature is Lightning's, so that configurations naming it fail with a clear message.

    Example:
        >>> MLFlowLogger()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fulmen.utilities.exceptions.MisconfigurationException: `MLFlowLogger` is not supported yet in ...
    """

    def __new__(
        cls,
        experiment_name: str = "lightning_logs",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, Any] | None = None,
        save_dir: str | None = "./mlruns",
        log_model: Literal[True, False, "all"] = False,
        prefix: str = "",
        artifact_location: str | None = None,
        run_id: str | None = None,
        synchronous: bool | None = None,
    ) -> MLFlowLogger:
        # Raised in __new__ so that no half-built logger exists that a caller could try to use.
        raise MisconfigurationException(
            "`MLFlowLogger` is not supported yet in fulmen (planned in the logging issue); "
            "use TensorBoardLogger or CSVLogger."
        )
