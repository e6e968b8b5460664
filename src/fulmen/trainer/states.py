"""Lightning's import path for the trainer's state enums (`lightning.pytorch.trainer.states`)."""

from fulmen.trainer.state import RunningStage, TrainerFn, TrainerState, TrainerStatus

__all__ = ["RunningStage", "TrainerFn", "TrainerState", "TrainerStatus"]
