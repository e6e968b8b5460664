"""The learning-rate range test: train a few steps while the learning rate grows, record the loss.

`lr_find` runs inside a fit (from `LearningRateFinder.on_fit_start`): it sets the optimizer's
learning rate to `min_lr`, raises it after every optimizer step up to `max_lr` (evenly or
geometrically), records the smoothed training loss at each step, stops early when the loss
diverges, and then puts weights, optimizer and trainer back as they were. `_LRFinder` holds the
results and suggests the learning rate where the loss falls fastest.

The numbers follow Lightning 2.x, so a seeded run suggests the same learning rate: the first
step uses `min_lr` and step `i > 0` uses `min_lr * (max_lr / min_lr) ** ((i + 1) / num_training)`
(linear: `min_lr + (i + 1) / num_training * (max_lr - min_lr)`); the loss is an exponential
moving average (beta 0.98) divided by `1 - beta ** (step + 1)`, where `step` counts from 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from fulmen.callbacks.callback import Callback
from fulmen.tuner.attributes import has_attribute, set_attribute
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info, rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import STEP_OUTPUT

__all__ = [
    "_LRFinder",
    "check_lr_find_arguments",
    "determine_lr_attr_name",
    "lr_find",
    "sweep_lr",
]

LR_MODES = ("linear", "exponential")


class _LRFinder:
    """The results of a learning-rate range test and the learning rate they suggest.

    `results` is `{"lr": [...], "loss": [...]}`: the learning rate of each optimizer step and the
    smoothed loss after it (NaN for a step whose `training_step` returned None).

    Example:
        >>> finder = _LRFinder("linear", 0.1, 0.5, 5)
        >>> finder.results = {"lr": [0.1, 0.2, 0.3, 0.4, 0.5], "loss": [1.0, 0.9, 0.4, 0.35, 3.0]}
        >>> finder.suggestion(skip_begin=0, skip_end=1)  # slopes -1, -3, -2.75, -0.5
        0.2
    """

    def __init__(self, mode: str, lr_min: float, lr_max: float, num_training: int) -> None:
        if mode not in LR_MODES:
            raise ValueError(f"mode={mode!r} is invalid: expected one of {LR_MODES}.")
        self.mode = mode
        self.lr_min = lr_min
        self.lr_max = lr_max
        self.num_training = num_training
        self.results: dict[str, Any] = {}
        self._optimal_idx: int | None = None

    def suggestion(self, skip_begin: int = 10, skip_end: int = 1) -> float | None:
        """Suggest the learning rate where the loss falls fastest (its steepest negative slope).

        The slope is `d loss / d lr` (`torch.gradient` over the recorded learning rates) of the
        points left after dropping `skip_begin` from the start and `skip_end` from the end, and
        ignoring non-finite losses. Returns None, with a warning, if fewer than two points remain.
        (`skip_end=0` keeps the last point; in Lightning it leaves no points at all.)
        """
        losses = list(self.results.get("loss", []))
        lrs = list(self.results.get("lr", []))
        end = len(losses) - skip_end
        kept = [
            i for i in range(skip_begin, max(end, skip_begin)) if math.isfinite(float(losses[i]))
        ]
        if len(kept) < 2:
            rank_zero_warn(
                f"The learning-rate finder has {len(kept)} usable point(s) after skipping "
                f"{skip_begin} at the start and {skip_end} at the end of {len(losses)}, and needs "
                "2 to suggest a learning rate. Increase `num_training` (and `max_epochs` or the "
                "dataset, if the run ended first), or lower `skip_begin`."
            )
            self._optimal_idx = None
            return None
        # In the default dtype, as Lightning computes it: a near tie then breaks the same way.
        kept_losses = torch.tensor([float(losses[i]) for i in kept])
        kept_lrs = torch.tensor([float(lrs[i]) for i in kept])
        slopes = torch.gradient(kept_losses, spacing=[kept_lrs])[0]
        self._optimal_idx = kept[int(torch.argmin(slopes))]
        return float(lrs[self._optimal_idx])

    def plot(self, suggest: bool = False, show: bool = False, ax: Any = None) -> Any:
        """Plot loss against learning rate (log scale in exponential mode); mark the suggestion.

        Needs matplotlib (`pip install fulmen[plot]`). Draws on `ax` if given, else on a new
        figure; returns the figure.
        """
        try:
            import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
        except ImportError as error:
            raise ImportError(
                "`_LRFinder.plot` needs matplotlib, which is not installed. Install it with "
                "`pip install 'fulmen[plot]'` (or `pip install matplotlib`)."
            ) from error
        lrs, losses = self.results["lr"], self.results["loss"]
        if ax is None:
            figure, ax = plt.subplots()
        else:
            figure = ax.figure
        ax.plot(lrs, losses)
        if self.mode == "exponential":
            ax.set_xscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Loss")
        if suggest and self.suggestion() is not None and self._optimal_idx is not None:
            index = self._optimal_idx
            ax.plot(lrs[index], losses[index], markersize=10, marker="o", color="red")
        if show:
            plt.show()
        return figure


def sweep_lr(mode: str, min_lr: float, max_lr: float, num_training: int, index: int) -> float:
    """The learning rate of optimizer step `index` of the range test (Lightning's schedule).

    Example:
        >>> [round(sweep_lr("exponential", 1e-3, 1.0, 3, i), 6) for i in range(3)]
        [0.001, 0.1, 1.0]
    """
    if index == 0:
        return min_lr
    fraction = (index + 1) / num_training
    if mode == "linear":
        return min_lr + fraction * (max_lr - min_lr)
    return float(min_lr * (max_lr / min_lr) ** fraction)


def check_lr_find_arguments(
    min_lr: float,
    max_lr: float,
    num_training: int,
    mode: str,
    early_stop_threshold: float | None,
    owner: str,
) -> str:
    """Raise if a range-test setting cannot work; return `mode` in lower case."""
    if not isinstance(mode, str) or mode.lower() not in LR_MODES:
        raise ValueError(f"{owner}(mode={mode!r}) is invalid: expected one of {LR_MODES}.")
    mode = mode.lower()
    steps_name = "num_training_steps" if owner == "LearningRateFinder" else "num_training"
    if isinstance(num_training, bool) or not isinstance(num_training, int) or num_training < 1:
        raise ValueError(
            f"{owner}({steps_name}={num_training!r}) is invalid: expected an int >= 1."
        )
    if (
        not isinstance(min_lr, (int, float))
        or min_lr < 0
        or (mode == "exponential" and min_lr == 0)
    ):
        raise ValueError(
            f"{owner}(min_lr={min_lr!r}) is invalid: expected a number "
            + (">= 0." if mode == "linear" else "> 0 (mode='exponential' multiplies it).")
        )
    if not isinstance(max_lr, (int, float)) or not max_lr > min_lr:
        raise ValueError(
            f"{owner}(max_lr={max_lr!r}) is invalid: expected a number above min_lr={min_lr!r}."
        )
    if early_stop_threshold is not None and (
        not isinstance(early_stop_threshold, (int, float)) or not early_stop_threshold > 0
    ):
        raise ValueError(
            f"{owner}(early_stop_threshold={early_stop_threshold!r}) is invalid: expected a "
            "number > 0, or None to never stop early."
        )
    return mode


def determine_lr_attr_name(model: LightningModule, attr_name: str = "") -> str:
    """The attribute that holds the model's learning rate: `attr_name`, else `lr` or `learning_rate`."""
    if attr_name:
        if not has_attribute(model, attr_name):
            raise AttributeError(
                f"lr_find(attr_name={attr_name!r}): {type(model).__name__} has no attribute "
                f"{attr_name!r}, in itself, its `hparams` or its datamodule."
            )
        return attr_name
    for name in ("lr", "learning_rate"):
        if has_attribute(model, name):
            return name
    raise AttributeError(
        f"The learning-rate finder updates the model's learning rate, but {type(model).__name__} "
        "has no `lr` or `learning_rate` attribute (nor in `hparams`). Add one and use it in "
        "`configure_optimizers`, name yours with `attr_name=...`, or pass `update_attr=False`."
    )


class _LRSweep(Callback):
    """Set each step's learning rate, record it and the smoothed loss; stop when it diverges."""

    def __init__(
        self,
        mode: str,
        min_lr: float,
        max_lr: float,
        num_training: int,
        early_stop_threshold: float | None,
        start_step: int,
        show_progress: bool,
        beta: float = 0.98,
    ) -> None:
        self.mode = mode
        self.min_lr = min_lr
        self.max_lr = max_lr
        self.num_training = num_training
        self.early_stop_threshold = early_stop_threshold
        self.start_step = start_step
        self.beta = beta
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.avg_loss = 0.0
        self.best_loss = 0.0
        self.show_progress = show_progress
        self.progress_bar: Any = None

    def _steps_this_batch(self, trainer: Trainer, batch_idx: int) -> bool:
        accumulate = trainer.accumulate_grad_batches
        return (batch_idx + 1) % accumulate == 0 or trainer.is_last_batch

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self._steps_this_batch(trainer, batch_idx):
            return
        if self.show_progress and self.progress_bar is None:
            from tqdm import tqdm

            self.progress_bar = tqdm(desc="Finding best initial lr", total=self.num_training)
        lr = sweep_lr(self.mode, self.min_lr, self.max_lr, self.num_training, len(self.lrs))
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr
        self.lrs.append(lr)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._steps_this_batch(trainer, batch_idx):
            return
        if self.progress_bar is not None:
            self.progress_bar.update()
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            # A skipped step still used a learning rate: NaN keeps the lists aligned and is
            # ignored by `suggestion`.
            self.losses.append(float("nan"))
            return
        step = trainer.global_step - self.start_step
        self.avg_loss = self.beta * self.avg_loss + (1 - self.beta) * float(loss.item())
        smoothed = self.avg_loss / (1 - self.beta ** (step + 1))
        diverged = (
            self.early_stop_threshold is not None
            and step > 1
            and smoothed > self.early_stop_threshold * self.best_loss
        )
        if diverged:
            trainer.should_stop = True
        trainer.should_stop = trainer.strategy.broadcast(trainer.should_stop)
        if smoothed < self.best_loss or step == 1:
            self.best_loss = smoothed
        self.losses.append(smoothed)

    def close(self) -> None:
        if self.progress_bar is not None:
            self.progress_bar.close()


def lr_find(
    trainer: Trainer,
    model: LightningModule,
    min_lr: float = 1e-8,
    max_lr: float = 1.0,
    num_training: int = 100,
    mode: str = "exponential",
    early_stop_threshold: float | None = 4.0,
    update_attr: bool = False,
    attr_name: str = "",
) -> _LRFinder | None:
    """Run the range test inside the running fit; return its results (None with `fast_dev_run`).

    Weights, optimizer, scheduler and gradient-scaler states, progress counters, callbacks,
    loggers and limits are put back afterwards. With `update_attr`, the suggested learning rate
    is then written to the model's attribute and to the optimizers, so a fit that goes on uses it.
    """
    from fulmen.tuner.trial import run_training, tuning_run

    if trainer.fast_dev_run:
        rank_zero_warn("The learning-rate finder does not run with `fast_dev_run`; it is skipped.")
        return None
    if update_attr:
        attr_name = determine_lr_attr_name(model, attr_name)
    if len(trainer.optimizers) != 1:
        raise MisconfigurationException(
            f"The learning-rate finder works with one optimizer, but `configure_optimizers` "
            f"returned {len(trainer.optimizers)}."
        )
    bar = trainer.progress_bar_callback
    sweep = _LRSweep(
        mode,
        min_lr,
        max_lr,
        num_training,
        early_stop_threshold,
        start_step=trainer.global_step,
        show_progress=bar is not None and bar.is_enabled and trainer.is_global_zero,
    )
    finder = _LRFinder(mode, min_lr, max_lr, num_training)
    try:
        with tuning_run(
            trainer,
            [sweep],
            max_steps=trainer.global_step + num_training,
            limit_val_batches=num_training,
            # The sweep sets the learning rate itself; the model's schedulers must not move it.
            lr_scheduler_configs=[],
            # A diverging loss must be able to end the sweep.
            min_epochs=None,
            min_steps=None,
        ):
            run_training(trainer)
    finally:
        sweep.close()
    steps = len(sweep.losses)
    if steps < num_training:
        rank_zero_info(f"The learning-rate finder stopped after {steps} of {num_training} steps.")
    finder.results = trainer.strategy.broadcast({"lr": sweep.lrs[:steps], "loss": sweep.losses})
    if update_attr:
        lr = finder.suggestion()
        if lr is not None:
            set_attribute(model, attr_name, lr)
            # A fit that goes on after the finder (the callback) keeps these optimizers.
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr
            rank_zero_info(f"Learning rate set to {lr}")
    return finder
