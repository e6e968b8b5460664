"""`RichProgressBar`: progress bars drawn with the optional `rich` package.

`rich` is imported when a `RichProgressBar` is built, never when fulmen is imported, so fulmen
does not depend on it. The hooks mirror `TQDMProgressBar`; only the drawing differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fulmen.callbacks.progress.progress_bar import ProgressBar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, TaskID
    from rich.style import Style

    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import STEP_OUTPUT

__all__ = ["RichProgressBar", "RichProgressBarTheme"]


@dataclass
class RichProgressBarTheme:
    """Styles of each part of a `RichProgressBar` (any `rich` style string or `Style`).

    Example:
        >>> RichProgressBarTheme(metrics_format=".2e").metrics_format
        '.2e'
    """

    description: str | Style = ""
    progress_bar: str | Style = "#6206E0"
    progress_bar_finished: str | Style = "#6206E0"
    progress_bar_pulse: str | Style = "#6206E0"
    batch_progress: str | Style = ""
    time: str | Style = "dim"
    processing_speed: str | Style = "dim underline"
    metrics: str | Style = "italic"
    metrics_text_delimiter: str = " "
    metrics_format: str = ".3f"


def _require_rich() -> None:
    try:
        import rich  # noqa: F401
    except ImportError as err:
        raise ModuleNotFoundError(
            "RichProgressBar needs the `rich` package, which is not installed. Install it with "
            "`pip install rich`, or use `TQDMProgressBar` instead."
        ) from err


def _total(total: int | float) -> int | None:
    """rich's total: None (a pulsing bar) when the length is unknown."""
    return None if math.isinf(total) else int(total)


def _build_columns(theme: RichProgressBarTheme) -> list[ProgressColumn]:
    from rich.progress import BarColumn, ProgressColumn, Task, TextColumn
    from rich.text import Text

    class BatchesColumn(ProgressColumn):  # type: ignore[misc]  # Any when rich is not installed
        def render(self, task: Task) -> Text:
            total = "?" if task.total is None else f"{int(task.total)}"
            return Text(f"{int(task.completed)}/{total}", style=theme.batch_progress)

    class TimeColumn(ProgressColumn):  # type: ignore[misc]  # Any when rich is not installed
        def render(self, task: Task) -> Text:
            elapsed = timedelta(seconds=int(task.elapsed or 0))
            left = task.time_remaining
            remaining = "-:--:--" if left is None else str(timedelta(seconds=int(left)))
            return Text(f"{elapsed} • {remaining}", style=theme.time)

    class SpeedColumn(ProgressColumn):  # type: ignore[misc]  # Any when rich is not installed
        def render(self, task: Task) -> Text:
            speed = task.speed or 0.0
            return Text(f"{speed:.2f}it/s", style=theme.processing_speed)

    class MetricsColumn(ProgressColumn):  # type: ignore[misc]  # Any when rich is not installed
        def render(self, task: Task) -> Text:
            return Text(str(task.fields.get("metrics", "")), style=theme.metrics)

    return [
        TextColumn("{task.description}", style=theme.description, markup=False),
        BarColumn(
            complete_style=theme.progress_bar,
            finished_style=theme.progress_bar_finished,
            pulse_style=theme.progress_bar_pulse,
        ),
        BatchesColumn(),
        TimeColumn(),
        SpeedColumn(),
        MetricsColumn(),
    ]


class RichProgressBar(ProgressBar):
    """Show `rich` progress bars for the sanity check, training, validation, test and predict.

    Needs `pip install rich`. The training bar shows `v_num` and the `prog_bar=True` metrics.

    Args:
        refresh_rate: redraw every this many batches (and at the last one); 0 hides the bars.
        leave: keep each finished epoch's bar on screen instead of reusing one bar.
        theme: the styles of each part of the bars.
        console_kwargs: keyword arguments for the `rich.console.Console` that draws the bars.

    Example:
        >>> import importlib.util
        >>> if importlib.util.find_spec("rich"):  # rich is optional
        ...     bar = RichProgressBar(refresh_rate=10, theme=RichProgressBarTheme(metrics="bold"))
        ...     assert bar.is_enabled and bar.theme.metrics == "bold"
    """

    def __init__(
        self,
        refresh_rate: int = 100,
        leave: bool = False,
        theme: RichProgressBarTheme | None = None,
        console_kwargs: dict[str, Any] | None = None,
    ) -> None:
        _require_rich()
        if isinstance(refresh_rate, bool) or not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(
                f"RichProgressBar(refresh_rate={refresh_rate!r}) is invalid: expected an int >= 0 "
                "(redraw every N batches; 0 hides the bars)."
            )
        super().__init__()
        self._refresh_rate = refresh_rate
        self._leave = leave
        self.theme = RichProgressBarTheme() if theme is None else theme
        self._console_kwargs = console_kwargs or {}
        self._console: Console | None = None
        self.progress: Progress | None = None
        self.train_progress_bar_id: TaskID | None = None
        self.val_sanity_progress_bar_id: TaskID | None = None
        self.val_progress_bar_id: TaskID | None = None
        self.test_progress_bar_id: TaskID | None = None
        self.predict_progress_bar_id: TaskID | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The live display holds a thread and a terminal; neither can be pickled.
        return {**vars(self), "progress": None, "_console": None}

    @property
    def refresh_rate(self) -> int:
        return self._refresh_rate

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self._refresh_rate > 0

    def configure_columns(self, trainer: Trainer) -> list[ProgressColumn]:
        """Return the columns of each bar; override to change the layout."""
        return _build_columns(self.theme)

    def refresh(self) -> None:
        """Redraw the bars now."""
        if self.progress is not None:
            self.progress.refresh()

    def _init_progress(self, trainer: Trainer) -> None:
        if not self.is_enabled or self.progress is not None:
            return
        from rich.console import Console
        from rich.progress import Progress

        self.train_progress_bar_id = self.val_sanity_progress_bar_id = None
        self.val_progress_bar_id = self.test_progress_bar_id = self.predict_progress_bar_id = None
        self._console = Console(**self._console_kwargs)
        # Redraws happen from the hooks at `refresh_rate`, not from a background thread.
        self.progress = Progress(
            *self.configure_columns(trainer), auto_refresh=False, console=self._console
        )
        self.progress.start()

    def _stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _add_task(self, total: int | float, description: str) -> TaskID:
        assert self.progress is not None
        return self.progress.add_task(description, total=_total(total), metrics="")

    def _hide(self, task_id: TaskID | None) -> None:
        if self.progress is not None and task_id is not None:
            self.progress.update(task_id, visible=False)

    def _update(self, task_id: TaskID | None, n: int, total: int | float) -> None:
        if self.progress is not None and task_id is not None and self._should_update(n, total):
            self.progress.update(task_id, completed=n)
            self.progress.refresh()

    def _should_update(self, current: int, total: int | float) -> bool:
        return current % self._refresh_rate == 0 or current == total

    def _update_metrics(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.progress is None or self.train_progress_bar_id is None:
            return
        theme = self.theme
        parts = []
        for name, value in self.get_metrics(trainer, pl_module).items():
            shown = (
                format(value, theme.metrics_format) if isinstance(value, (int, float)) else value
            )
            parts.append(f"{name}: {shown}")
        self.progress.update(
            self.train_progress_bar_id, metrics=theme.metrics_text_delimiter.join(parts)
        )

    def _train_description(self, trainer: Trainer) -> str:
        description = f"Epoch {trainer.current_epoch}"
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            description += f"/{trainer.max_epochs - 1}"
        # As wide as "Validation", so the bars do not jump when one replaces the other.
        return description.ljust(len(self.validation_description))

    def _eval_description(self, description: str, batches: list[int], dataloader_idx: int) -> str:
        return f"{description} DataLoader {dataloader_idx}" if len(batches) > 1 else description

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._init_progress(trainer)

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._hide(self.val_sanity_progress_bar_id)
        self.refresh()
        self.reset_dataloader_idx_tracker()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._init_progress(trainer)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.progress is None:
            return
        total, description = self.total_train_batches, self._train_description(trainer)
        if self.train_progress_bar_id is None or self._leave:
            self.train_progress_bar_id = self._add_task(total, description)
        else:
            self.progress.reset(
                self.train_progress_bar_id, total=_total(total), description=description
            )
        self.refresh()

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        n, total = batch_idx + 1, self.total_train_batches
        if self.progress is not None and self._should_update(n, total):
            self._update_metrics(trainer, pl_module)
            self._update(self.train_progress_bar_id, n, total)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._init_progress(trainer)

    def on_validation_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        total = self.total_val_batches_current_dataloader
        if trainer.sanity_checking:
            self._hide(self.val_sanity_progress_bar_id)
            description = self._eval_description(
                self.sanity_check_description, trainer.num_sanity_val_batches, dataloader_idx
            )
            self.val_sanity_progress_bar_id = self._add_task(total, description)
        else:
            self._hide(self.val_progress_bar_id)
            description = self._eval_description(
                self.validation_description, trainer.num_val_batches, dataloader_idx
            )
            self.val_progress_bar_id = self._add_task(total, description)
        self.refresh()

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        task_id = (
            self.val_sanity_progress_bar_id if trainer.sanity_checking else self.val_progress_bar_id
        )
        self._update(task_id, batch_idx + 1, self.total_val_batches_current_dataloader)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == "fit":
            # The validation bar is drawn under the training bar only while validation runs.
            self._hide(self.val_progress_bar_id)
            self._update_metrics(trainer, pl_module)
            self.refresh()
        else:
            self._stop_progress()
        self.reset_dataloader_idx_tracker()

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._init_progress(trainer)

    def on_test_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        self._hide(self.test_progress_bar_id)
        description = self._eval_description(
            self.test_description, trainer.num_test_batches, dataloader_idx
        )
        self.test_progress_bar_id = self._add_task(
            self.total_test_batches_current_dataloader, description
        )
        self.refresh()

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update(
            self.test_progress_bar_id, batch_idx + 1, self.total_test_batches_current_dataloader
        )

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop_progress()
        self.reset_dataloader_idx_tracker()

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._init_progress(trainer)

    def on_predict_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        self._hide(self.predict_progress_bar_id)
        description = self._eval_description(
            self.predict_description, trainer.num_predict_batches, dataloader_idx
        )
        self.predict_progress_bar_id = self._add_task(
            self.total_predict_batches_current_dataloader, description
        )
        self.refresh()

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update(
            self.predict_progress_bar_id,
            batch_idx + 1,
            self.total_predict_batches_current_dataloader,
        )

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop_progress()
        self.reset_dataloader_idx_tracker()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._stop_progress()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._stop_progress()
