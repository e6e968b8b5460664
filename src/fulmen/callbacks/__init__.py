"""Callbacks shipped with fulmen.

Each callback's module is imported the first time its name is used, so that `import fulmen`
does not pay for the ones a run never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fulmen.callbacks.callback import Callback

if TYPE_CHECKING:
    from fulmen.callbacks.batch_size_finder import BatchSizeFinder
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

_MODULES = {
    "BackboneFinetuning": "fulmen.callbacks.finetuning",
    "BaseFinetuning": "fulmen.callbacks.finetuning",
    "BasePredictionWriter": "fulmen.callbacks.prediction_writer",
    "BatchSizeFinder": "fulmen.callbacks.batch_size_finder",
    "Checkpoint": "fulmen.callbacks.checkpoint",
    "DeviceStatsMonitor": "fulmen.callbacks.device_stats_monitor",
    "EMAWeightAveraging": "fulmen.callbacks.weight_averaging",
    "EarlyStopping": "fulmen.callbacks.early_stopping",
    "GradientAccumulationScheduler": "fulmen.callbacks.gradient_accumulation_scheduler",
    "LambdaCallback": "fulmen.callbacks.lambda_function",
    "LearningRateFinder": "fulmen.callbacks.lr_finder",
    "LearningRateMonitor": "fulmen.callbacks.lr_monitor",
    "ModelCheckpoint": "fulmen.callbacks.model_checkpoint",
    "ModelSummary": "fulmen.callbacks.model_summary",
    "OnExceptionCheckpoint": "fulmen.callbacks.on_exception_checkpoint",
    "ProgressBar": "fulmen.callbacks.progress",
    "RichModelSummary": "fulmen.callbacks.rich_model_summary",
    "RichProgressBar": "fulmen.callbacks.progress",
    "StochasticWeightAveraging": "fulmen.callbacks.stochastic_weight_avg",
    "TQDMProgressBar": "fulmen.callbacks.progress",
    "Timer": "fulmen.callbacks.timer",
    "WeightAveraging": "fulmen.callbacks.weight_averaging",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


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
