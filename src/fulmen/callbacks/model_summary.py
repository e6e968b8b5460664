"""The callback that logs the model summary table when `fit` starts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fulmen.callbacks.callback import Callback
from fulmen.utilities.model_summary.model_summary import (
    ModelSummary as Summary,
)
from fulmen.utilities.model_summary.model_summary import (
    _format_summary_table,
    summarize,
)

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["ModelSummary"]

log = logging.getLogger(__name__)


class ModelSummary(Callback):
    """Log the model summary (layers down to `max_depth`; 0 turns it off) at the start of `fit`.

    Only global rank zero builds and logs it. Subclasses change the output by overriding the
    static `summarize` method, which receives the table's columns and totals.

    Example:
        >>> from fulmen import Trainer
        >>> trainer = Trainer(callbacks=[ModelSummary(max_depth=-1)], logger=False)
    """

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        self._max_depth = max_depth
        self._summarize_kwargs = summarize_kwargs

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        summary = self._summary(trainer, pl_module)
        self.summarize(
            summary._get_summary_data(),
            summary.total_parameters,
            summary.trainable_parameters,
            summary.model_size,
            summary.total_training_modes,
            summary.total_flops,
            **self._summarize_kwargs,
        )

    def _summary(self, trainer: Trainer, pl_module: LightningModule) -> Summary:
        return summarize(pl_module, max_depth=self._max_depth)

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        """Log the summary table at INFO level."""
        table = _format_summary_table(
            summary_data,
            total_parameters,
            trainable_parameters,
            model_size,
            total_training_modes,
            total_flops,
        )
        log.info("\n" + table)
