"""`Timer`: measure the time each stage takes and stop training when a time budget is spent.

`Trainer(max_time=...)` adds one; `parse_duration` is the one parser of duration arguments.
"""

from __future__ import annotations

from datetime import timedelta
from time import monotonic
from typing import TYPE_CHECKING, Any

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import STEP_OUTPUT

__all__ = ["Timer", "parse_duration"]

# The stages Lightning's Timer reports, in its order (the keys of `state_dict()["time_elapsed"]`).
_STAGES = ("train", "sanity_check", "validate", "test", "predict")


def parse_duration(
    value: str | timedelta | dict[str, float] | None,
    owner: str = "Timer",
    argument: str = "duration",
) -> timedelta | None:
    """Turn `"DD:HH:MM:SS"`, a `timedelta` or a dict of `timedelta` keywords into a `timedelta`.

    `owner` and `argument` name the setting in the error message, e.g. `Trainer(max_time=...)`.

    Example:
        >>> parse_duration("01:02:03:04")
        datetime.timedelta(days=1, seconds=7384)
        >>> parse_duration({"hours": 1, "minutes": 30})
        datetime.timedelta(seconds=5400)
        >>> parse_duration("12:00", owner="Trainer", argument="max_time")
        Traceback (most recent call last):
        ...
        fulmen.utilities.exceptions.MisconfigurationException: Trainer(max_time='12:00') is not a valid duration: expected a 'DD:HH:MM:SS' string, a datetime.timedelta or a dict of timedelta keywords such as {'hours': 1}.
    """
    if value is None:
        return None
    duration: timedelta | None = None
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, dict):
        try:
            duration = timedelta(**value)
        except TypeError:
            duration = None
    elif isinstance(value, str):
        parts = value.strip().split(":")
        if len(parts) == 4 and all(part.isdigit() for part in parts):
            days, hours, minutes, seconds = (int(part) for part in parts)
            duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration is None or duration < timedelta(0):
        raise MisconfigurationException(
            f"{owner}({argument}={value!r}) is not a valid duration: expected a 'DD:HH:MM:SS' "
            "string, a datetime.timedelta or a dict of timedelta keywords such as {'hours': 1}."
        )
    return duration


def _check_stage(stage: str) -> str:
    # Accept the trainer's stage enums as well as plain strings.
    name = str(getattr(stage, "value", stage))
    if name not in _STAGES:
        raise ValueError(f"Timer got stage={stage!r}: expected one of {', '.join(_STAGES)}.")
    return name


class Timer(Callback):
    """Time the train, validate and test stages and stop training once `duration` has passed.

    The budget is checked after each training batch (`interval="step"`) or epoch
    (`interval="epoch"`); training then stops as if `trainer.should_stop` had been set. The time
    spent is saved in checkpoints, so a resumed run continues the same budget.

    Args:
        duration: the time budget: `"DD:HH:MM:SS"`, a `timedelta` or a dict such as
            `{"hours": 1}`; None only measures.
        interval: check after every `"step"` or every `"epoch"`.
        verbose: log a message when the time is up.

    Example:
        >>> timer = Timer(duration="00:12:00:00", interval="epoch")
        >>> timer.time_elapsed("train"), timer.time_remaining("train")
        (0.0, 43200.0)
    """

    def __init__(
        self,
        duration: str | timedelta | dict[str, float] | None = None,
        interval: str = "step",
        verbose: bool = True,
    ) -> None:
        parsed = parse_duration(duration)
        if interval not in ("step", "epoch"):
            raise MisconfigurationException(
                f"Timer(interval={interval!r}) is invalid: expected 'step' or 'epoch'."
            )
        self._duration = None if parsed is None else parsed.total_seconds()
        self._interval = interval
        self._verbose = verbose
        self._start_time: dict[str, float | None] = dict.fromkeys(_STAGES)
        self._end_time: dict[str, float | None] = dict.fromkeys(_STAGES)
        # Time spent before a resume, restored from the checkpoint.
        self._offset: dict[str, float] = dict.fromkeys(_STAGES, 0.0)

    def start_time(self, stage: str = "train") -> float | None:
        """The `monotonic()` value at which `stage` last started, or None."""
        return self._start_time[_check_stage(stage)]

    def end_time(self, stage: str = "train") -> float | None:
        """The `monotonic()` value at which `stage` last ended, or None while it runs."""
        return self._end_time[_check_stage(stage)]

    def time_elapsed(self, stage: str = "train") -> float:
        """Seconds spent in `stage`, including the time before a resume."""
        stage = _check_stage(stage)
        start, end = self._start_time[stage], self._end_time[stage]
        offset = self._offset[stage]
        if start is None:
            return offset
        return (monotonic() if end is None else end) - start + offset

    def time_remaining(self, stage: str = "train") -> float | None:
        """Seconds left of the budget in `stage`, or None when there is no budget."""
        if self._duration is None:
            return None
        return self._duration - self.time_elapsed(stage)

    def _start(self, stage: str) -> None:
        self._start_time[stage] = monotonic()
        self._end_time[stage] = None

    def _end(self, stage: str) -> None:
        self._end_time[stage] = monotonic()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start("train")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("train")

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start("validate")

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("validate")

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start("test")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("test")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A run resumed from a checkpoint whose budget is already spent stops before training.
        if self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._interval == "step" and self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._interval == "epoch" and self._duration is not None:
            self._check_time_remaining(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"time_elapsed": {stage: self.time_elapsed(stage) for stage in _STAGES}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        elapsed = state_dict.get("time_elapsed", {})
        self._offset = {stage: float(elapsed.get(stage, 0.0)) for stage in _STAGES}

    def _check_time_remaining(self, trainer: Trainer) -> None:
        assert self._duration is not None
        elapsed = self.time_elapsed("train")
        # Clocks differ between processes; rank zero decides so that every rank stops together.
        should_stop = trainer.strategy.broadcast(elapsed >= self._duration)
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop and self._verbose:
            rank_zero_info(
                f"Time limit of {timedelta(seconds=self._duration)} reached after "
                f"{timedelta(seconds=int(elapsed))} of training. Signaling Trainer to stop."
            )
