"""Callbacks shipped with fulmen."""

from fulmen.callbacks.batch_size_finder import BatchSizeFinder
from fulmen.callbacks.callback import Callback
from fulmen.callbacks.checkpoint import Checkpoint
from fulmen.callbacks.device_stats_monitor import DeviceStatsMonitor
from fulmen.callbacks.early_stopping import EarlyStopping
from fulmen.callbacks.finetuning import BackboneFinetuning, BaseFinetuning
from fulmen.callbacks.gradient_accumulation_scheduler import GradientAccumulationScheduler
from fulmen.callbacks.lambda_function import LambdaCallback
from fulmen.callbacks.lr_finder import LearningRateFinder
from fulmen.callbacks.lr_monitor import LearningRateMonitor
from fulmen.callbacks.model_checkpoint import ModelCheckpoint
from fulmen.callbacks.model_summary import ModelSummary
from fulmen.callbacks.on_exception_checkpoint import OnExceptionCheckpoint
from fulmen.callbacks.prediction_writer import BasePredictionWriter
from fulmen.callbacks.progress import ProgressBar, RichProgressBar, TQDMProgressBar
from fulmen.callbacks.rich_model_summary import RichModelSummary
from fulmen.callbacks.stochastic_weight_avg import StochasticWeightAveraging
from fulmen.callbacks.timer import Timer
from fulmen.callbacks.weight_averaging import EMAWeightAveraging, WeightAveraging

__all__ = [
    "BackboneFinetuning",
    "BaseFinetuning",
    "BasePredictionWriter",
    "BatchSizeFinder",
    "Callback",
    "Checkpoint",
    "DeviceStatsMonitor",
    "EarlyStopping",
    "EMAWeightAveraging",
    "GradientAccumulationScheduler",
    "LambdaCallback",
    "LearningRateFinder",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "RichModelSummary",
    "RichProgressBar",
    "StochasticWeightAveraging",
    "Timer",
    "TQDMProgressBar",
    "WeightAveraging",
]
