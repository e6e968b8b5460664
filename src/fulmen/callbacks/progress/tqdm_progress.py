"""`TQDMProgressBar`: the default terminal progress bars, drawn with tqdm.

tqdm is imported the first time a bar is drawn, not when fulmen is imported. The `Tqdm` class
(tqdm with fulmen's number format) is built on first use and is importable from this module.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from fulmen.callbacks.progress.progress_bar import ProgressBar
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from tqdm import tqdm

    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import STEP_OUTPUT

__all__ = ["TQDMProgressBar"]

# Google Colab's browser output slows training down when a bar redraws after every batch.
_COLAB_REFRESH_RATE = 20


def _format_num(n: Any) -> str:
    """Format a number for the bar's postfix: 3 significant digits, floats padded to a steady width.

    The padding keeps a postfix from jumping left and right as a loss goes from 0.5 to 0.47.

    Example:
        >>> [_format_num(v) for v in (1.0, 1.27, 12.1, 0.471, 123.456, 1e-5, 7, "text")]
        ['1.000', '1.270', '12.10', '0.471', '123.0', '1e-5', '7', 'text']
    """
    if not isinstance(n, (int, float)):
        return str(n)
    short = f"{n:.3g}".replace("+0", "+").replace("-0", "-")
    text = short if len(short) < len(str(n)) else str(n)
    if isinstance(n, float) and "e" not in text:
        if "." not in text:
            text += "."
        text = text.ljust(5, "0")
    return text


@functools.cache
def _tqdm_class() -> type[tqdm[Any]]:
    from tqdm import tqdm

    class Tqdm(tqdm):  # type: ignore[type-arg]
        """tqdm that formats postfix numbers with a steady width."""

        @staticmethod
        def format_num(n: float | str) -> str:
            return _format_num(n)

    return Tqdm


def __getattr__(name: str) -> Any:
    # `from ...tqdm_progress import Tqdm` (used to build custom bars) must work without importing
    # tqdm when this module is imported.
    if name == "Tqdm":
        return _tqdm_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _total(total: int | float) -> int | None:
    """tqdm's total: None when the length is unknown (an iterable dataset)."""
    return None if math.isinf(total) else int(total)


def _update_n(bar: tqdm[Any], n: int) -> None:
    if not bar.disable:
        bar.n = n
        bar.refresh()


class TQDMProgressBar(ProgressBar):
    """Show tqdm bars for the sanity check, each training epoch, validation, test and predict.

    The training bar reads "Epoch N" and shows `v_num` and the `prog_bar=True` metrics after
    the count. Bars redraw every `refresh_rate` batches; in between, a batch costs one modulo.

    Args:
        refresh_rate: redraw every this many batches; 0 hides the bars.
        process_position: shift the bars down this many slots, to run several trainers at once.
        leave: keep each finished epoch's bar on screen instead of reusing one bar.

    Example:
        >>> bar = TQDMProgressBar(refresh_rate=10)
        >>> bar.refresh_rate, bar.process_position, bar.is_enabled
        (10, 0, True)
        >>> TQDMProgressBar(refresh_rate=0).is_enabled
        False
    """

    BAR_FORMAT = (
        "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"
    )

    # Seconds between two redraws at most (the last batch of a loop always redraws).
    min_redraw_interval: float = 0.1

    def __init__(
        self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False
    ) -> None:
        if isinstance(refresh_rate, bool) or not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(
                f"TQDMProgressBar(refresh_rate={refresh_rate!r}) is invalid: expected an int >= 0 "
                "(redraw every N batches; 0 hides the bars)."
            )
        if (
            isinstance(process_position, bool)
            or not isinstance(process_position, int)
            or process_position < 0
        ):
            raise ValueError(
                f"TQDMProgressBar(process_position={process_position!r}) is invalid: expected an "
                "int >= 0."
            )
        super().__init__()
        self._last_redraw = -math.inf
        self._refresh_rate = self._resolve_refresh_rate(refresh_rate)
        self._process_position = process_position
        self._leave = leave
        self._train_progress_bar: tqdm[Any] | None = None
        self._val_progress_bar: tqdm[Any] | None = None
        self._test_progress_bar: tqdm[Any] | None = None
        self._predict_progress_bar: tqdm[Any] | None = None
        self._train_bar_left = False  # with `leave`, the last epoch's bar was closed and kept

    def __getstate__(self) -> dict[str, Any]:
        # tqdm bars hold locks and file handles and cannot be pickled (spawned processes, deepcopy).
        from tqdm import tqdm

        return {key: None if isinstance(v, tqdm) else v for key, v in vars(self).items()}

    @property
    def train_progress_bar(self) -> tqdm[Any]:
        return self._require("_train_progress_bar")

    @train_progress_bar.setter
    def train_progress_bar(self, bar: tqdm[Any]) -> None:
        self._train_progress_bar = bar

    @property
    def val_progress_bar(self) -> tqdm[Any]:
        return self._require("_val_progress_bar")

    @val_progress_bar.setter
    def val_progress_bar(self, bar: tqdm[Any]) -> None:
        self._val_progress_bar = bar

    @property
    def test_progress_bar(self) -> tqdm[Any]:
        return self._require("_test_progress_bar")

    @test_progress_bar.setter
    def test_progress_bar(self, bar: tqdm[Any]) -> None:
        self._test_progress_bar = bar

    @property
    def predict_progress_bar(self) -> tqdm[Any]:
        return self._require("_predict_progress_bar")

    @predict_progress_bar.setter
    def predict_progress_bar(self, bar: tqdm[Any]) -> None:
        self._predict_progress_bar = bar

    def _require(self, attribute: str) -> tqdm[Any]:
        bar: tqdm[Any] | None = getattr(self, attribute)
        if bar is None:
            raise TypeError(
                f"The `{type(self).__name__}.{attribute}` reference has not been set yet."
            )
        return bar

    @property
    def refresh_rate(self) -> int:
        return self._refresh_rate

    @property
    def process_position(self) -> int:
        return self._process_position

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self._refresh_rate > 0

    def init_sanity_tqdm(self) -> tqdm[Any]:
        """Create the bar for the validation sanity check."""
        return self._new_bar(self.sanity_check_description, 2 * self._process_position, leave=False)

    def init_train_tqdm(self) -> tqdm[Any]:
        """Create the bar for training epochs."""
        return self._new_bar(self.train_description, 2 * self._process_position, leave=True)

    def init_predict_tqdm(self) -> tqdm[Any]:
        """Create the bar for prediction."""
        return self._new_bar(self.predict_description, 2 * self._process_position, leave=True)

    def init_validation_tqdm(self) -> tqdm[Any]:
        """Create the bar for validation: below the training bar during fit, alone otherwise."""
        has_main_bar = self.trainer.state.fn != "validate"
        return self._new_bar(
            self.validation_description,
            2 * self._process_position + has_main_bar,
            leave=not has_main_bar,
        )

    def init_test_tqdm(self) -> tqdm[Any]:
        """Create the bar for testing."""
        return self._new_bar(self.test_description, 2 * self._process_position, leave=True)

    def _new_bar(self, description: str, position: int, leave: bool) -> tqdm[Any]:
        return _tqdm_class()(
            desc=description,
            position=position,
            disable=self.is_disabled,
            leave=leave,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.val_progress_bar = self.init_sanity_tqdm()

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.val_progress_bar.close()
        self._val_progress_bar = None
        self.reset_dataloader_idx_tracker()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_progress_bar = self.init_train_tqdm()
        self._train_bar_left = False

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._train_bar_left:
            # The previous epoch's bar stays on screen as it ended; this epoch gets a new one.
            self.train_progress_bar = self.init_train_tqdm()
            self._train_bar_left = False
        bar = self.train_progress_bar
        # `reset` redraws; naming the epoch first makes that one draw show the right name.
        bar.set_description(f"Epoch {trainer.current_epoch}", refresh=False)
        bar.reset(_total(self.total_train_batches))
        bar.initial = 0

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # Runs after every batch: when not redrawing, it must cost next to nothing.
        n = batch_idx + 1
        bar = self._train_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            _update_n(bar, n)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        bar = self.train_progress_bar
        if not bar.disable:
            bar.set_postfix(self.get_metrics(trainer, pl_module))
        if self._leave:
            bar.close()
            self._train_bar_left = True

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_progress_bar.close()

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.val_progress_bar = self.init_validation_tqdm()

    def on_validation_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.has_dataloader_changed(dataloader_idx):
            return
        description = (
            self.sanity_check_description
            if trainer.sanity_checking
            else self.validation_description
        )
        self._start_dataloader(
            self.val_progress_bar,
            description,
            self.total_val_batches_current_dataloader,
            dataloader_idx,
        )

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        n = batch_idx + 1
        bar = self._val_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            _update_n(bar, n)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        train_bar = self._train_progress_bar
        if (
            train_bar is not None
            and not train_bar.disable
            and trainer.state.fn == "fit"
            and not trainer.sanity_checking
        ):
            # Show the new validation metrics on the training bar, which stays on screen.
            train_bar.set_postfix(self.get_metrics(trainer, pl_module))
        if trainer.sanity_checking:
            return
        self.val_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.test_progress_bar = self.init_test_tqdm()

    def on_test_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._start_dataloader(
                self.test_progress_bar,
                self.test_description,
                self.total_test_batches_current_dataloader,
                dataloader_idx,
            )

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        n = batch_idx + 1
        bar = self._test_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            _update_n(bar, n)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.test_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.predict_progress_bar = self.init_predict_tqdm()

    def on_predict_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._start_dataloader(
                self.predict_progress_bar,
                self.predict_description,
                self.total_predict_batches_current_dataloader,
                dataloader_idx,
            )

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        n = batch_idx + 1
        bar = self._predict_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            _update_n(bar, n)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.predict_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        """Print above the active bar so it is not torn apart; plain `print` when none is drawn."""
        for bar in (
            self._train_progress_bar,
            self._val_progress_bar,
            self._test_progress_bar,
            self._predict_progress_bar,
        ):
            if bar is not None and not bar.disable:
                bar.write(sep.join(map(str, args)), **kwargs)
                return
        print(*args, sep=sep, **kwargs)

    def _start_dataloader(
        self, bar: tqdm[Any], description: str, total: int | float, dataloader_idx: int
    ) -> None:
        bar.set_description(f"{description} DataLoader {dataloader_idx}", refresh=False)
        bar.reset(_total(total))
        bar.initial = 0

    def _should_update(self, current: int, total: float | None) -> bool:
        rate = self._refresh_rate
        if not self._enabled or rate <= 0:
            return False
        if current == total:
            return True
        if current % rate != 0:
            return False
        # A redraw (metrics read from the device, formatted, written) costs far more than a
        # step of a small model; nobody reads a bar faster than ~10 times a second.
        now = time.monotonic()
        if now - self._last_redraw < self.min_redraw_interval:
            return False
        self._last_redraw = now
        return True

    @staticmethod
    def _resolve_refresh_rate(refresh_rate: int) -> int:
        if os.getenv("COLAB_GPU") and refresh_rate == 1:
            rank_zero_warn(
                f"TQDMProgressBar(refresh_rate=1) redraws after every batch, which slows Google "
                f"Colab down; using refresh_rate={_COLAB_REFRESH_RATE}. Pass another value to "
                "override."
            )
            return _COLAB_REFRESH_RATE
        # tqdm's own setting for the same thing; a larger `refresh_rate` (or 0, hidden) still wins.
        if "TQDM_MINITERS" in os.environ and refresh_rate > 0:
            return max(int(os.environ["TQDM_MINITERS"]), refresh_rate)
        return refresh_rate
