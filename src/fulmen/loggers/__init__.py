"""Loggers: where the metrics and hyperparameters of a run are written (Lightning's `loggers`)."""

from __future__ import annotations

from fulmen.loggers.comet import CometLogger
from fulmen.loggers.csv_logs import CSVLogger
from fulmen.loggers.litlogger import LitLogger
from fulmen.loggers.logger import Logger
from fulmen.loggers.mlflow import MLFlowLogger
from fulmen.loggers.tensorboard import TensorBoardLogger
from fulmen.loggers.wandb import WandbLogger

__all__ = [
    "CSVLogger",
    "CometLogger",
    "LitLogger",
    "Logger",
    "MLFlowLogger",
    "TensorBoardLogger",
    "WandbLogger",
]
