"""Where the trainer is: the entry point, the stage and every progress counter.

`TrainerState` is the only mutable progress state in fulmen. `trainer.current_epoch`,
`trainer.global_step` and friends are properties that read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["RunningStage", "TrainerFn", "TrainerState", "TrainerStatus"]


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return str(self.value).lower() == other.lower()
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(str(self.value).lower())


class TrainerFn(_StrEnum):
    """The entry point that is running: the public method the user called."""

    FITTING = "fit"
    VALIDATING = "validate"
    TESTING = "test"
    PREDICTING = "predict"


class TrainerStatus(_StrEnum):
    """Whether a run is going, done or was ended early."""

    INITIALIZING = "initializing"
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"


class RunningStage(_StrEnum):
    """The loop that is running right now (fit alternates train and validate)."""

    TRAINING = "train"
    SANITY_CHECKING = "sanity_check"
    VALIDATING = "validate"
    TESTING = "test"
    PREDICTING = "predict"

    @property
    def evaluating(self) -> bool:
        return self in (RunningStage.VALIDATING, RunningStage.TESTING, RunningStage.SANITY_CHECKING)

    @property
    def dataloader_prefix(self) -> str:
        """The prefix of the dataloader hook for this stage: "train", "val", "test", "predict"."""
        if self in (RunningStage.VALIDATING, RunningStage.SANITY_CHECKING):
            return "val"
        return str(self.value)


@dataclass
class TrainerState:
    """Where the trainer is. Every counter fulmen keeps lives here."""

    fn: TrainerFn | None = None
    status: TrainerStatus = TrainerStatus.INITIALIZING
    stage: RunningStage | None = None
    epoch: int = 0  # trainer.current_epoch; becomes n after n finished epochs
    global_step: int = 0  # optimizer steps taken, never reset
    batch_idx: int = 0  # index of the current training batch within its epoch
    batches_done_in_epoch: int = 0  # training batches of this epoch whose optimization finished
    batches_that_stepped: int = 0  # the logger's x-axis: training batches whose step completed
    total_batches_seen: int = 0  # training batches run in this fit, across epochs
    should_stop: bool = False  # set by EarlyStopping and friends; checked after each batch
    # Mid-epoch resume: batches of the resumed epoch that were already trained.
    resume_batch_idx: int = 0
    epoch_done: bool = False  # in the epoch-end hooks: a checkpoint resumes at the next epoch
    step_pending: bool = False  # this batch stepped, but batches_that_stepped is not yet counted
    validated: tuple[int, int] | None = None  # (epoch, batch_idx) of the last fit validation
    last_val_time: float | None = None  # when fit's last validation ended (time-based checks)
    restarting: bool = False  # resumed inside an epoch: no sanity check
    # Random states for exact resume: where this epoch's shuffle came from, and, when restoring
    # a checkpoint, the states it saved.
    epoch_start_rng: dict[str, Any] | None = None
    resume_rng: dict[str, Any] | None = None
    resume_epoch_start_rng: dict[str, Any] | None = None
    resume_validation_due: bool = False

    @property
    def finished(self) -> bool:
        return self.status == TrainerStatus.FINISHED

    @property
    def stopped(self) -> bool:
        return self.status == TrainerStatus.INTERRUPTED

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "batch_idx": self.batch_idx,
            "batches_that_stepped": self.batches_that_stepped,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.batch_idx = int(state.get("batch_idx", 0))
        self.batches_that_stepped = int(state.get("batches_that_stepped", self.global_step))
