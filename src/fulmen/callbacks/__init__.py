"""Callbacks shipped with fulmen."""

from fulmen.callbacks.callback import Callback
from fulmen.callbacks.checkpoint import Checkpoint
from fulmen.callbacks.early_stopping import EarlyStopping
from fulmen.callbacks.gradient_accumulation_scheduler import GradientAccumulationScheduler
from fulmen.callbacks.lambda_function import LambdaCallback
from fulmen.callbacks.lr_monitor import LearningRateMonitor
from fulmen.callbacks.model_checkpoint import ModelCheckpoint
from fulmen.callbacks.model_summary import ModelSummary
from fulmen.callbacks.on_exception_checkpoint import OnExceptionCheckpoint
from fulmen.callbacks.prediction_writer import BasePredictionWriter
from fulmen.callbacks.progress import ProgressBar, RichProgressBar, TQDMProgressBar
from fulmen.callbacks.rich_model_summary import RichModelSummary
from fulmen.callbacks.timer import Timer

__all__ = [
    "BasePredictionWriter",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "GradientAccumulationScheduler",
    "LambdaCallback",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "RichModelSummary",
    "RichProgressBar",
    "Timer",
    "TQDMProgressBar",
]
