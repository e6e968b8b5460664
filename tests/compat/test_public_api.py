"""Lightning's public import paths exist under fulmen, and each `__all__` is Lightning's.

Names of features that later issues bring are listed in NOT_YET with the issue; the list may only
shrink. Everything else in Lightning's `__all__` must be exported by fulmen, and fulmen exports
nothing Lightning does not.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

# Lightning `__all__` entries fulmen does not export yet, and the issue that brings them.
NOT_YET: dict[str, set[str]] = {
    # These three have no issue yet.
    "callbacks": {
        "ModelPruning",
        "SpikeDetection",
        "ThroughputMonitor",
    },
}

EXPECTED_ALL: dict[str, set[str]] = {
    "": {"Trainer", "LightningDataModule", "LightningModule", "Callback", "seed_everything"},
    "callbacks": {
        "BackboneFinetuning",
        "BaseFinetuning",
        "BasePredictionWriter",
        "BatchSizeFinder",
        "Callback",
        "Checkpoint",
        "DeviceStatsMonitor",
        "EarlyStopping",
        "GradientAccumulationScheduler",
        "LambdaCallback",
        "LearningRateFinder",
        "LearningRateMonitor",
        "ModelCheckpoint",
        "ModelPruning",
        "ModelSummary",
        "OnExceptionCheckpoint",
        "ProgressBar",
        "RichModelSummary",
        "RichProgressBar",
        "StochasticWeightAveraging",
        "SpikeDetection",
        "ThroughputMonitor",
        "Timer",
        "TQDMProgressBar",
        "EMAWeightAveraging",
        "WeightAveraging",
    },
    "loggers": {
        "LitLogger",
        "CometLogger",
        "CSVLogger",
        "Logger",
        "MLFlowLogger",
        "TensorBoardLogger",
        "WandbLogger",
    },
    "profilers": {
        "Profiler",
        "AdvancedProfiler",
        "PassThroughProfiler",
        "PyTorchProfiler",
        "SimpleProfiler",
        "XLAProfiler",
    },
    "strategies": {
        "DDPStrategy",
        "DeepSpeedStrategy",
        "FSDPStrategy",
        "ModelParallelStrategy",
        "ParallelStrategy",
        "SingleDeviceStrategy",
        "Strategy",
    },
    "accelerators": {
        "Accelerator",
        "CPUAccelerator",
        "CUDAAccelerator",
        "MPSAccelerator",
        "XLAAccelerator",
        "find_usable_cuda_devices",
    },
    "plugins": {
        "AsyncCheckpointIO",
        "CheckpointIO",
        "TorchCheckpointIO",
        "XLACheckpointIO",
        "BitsandbytesPrecision",
        "DeepSpeedPrecision",
        "DoublePrecision",
        "HalfPrecision",
        "MixedPrecision",
        "Precision",
        "TransformerEnginePrecision",
        "FSDPPrecision",
        "XLAPrecision",
        "LayerSync",
        "TorchSyncBatchNorm",
    },
    "plugins.precision": {
        "BitsandbytesPrecision",
        "DeepSpeedPrecision",
        "DoublePrecision",
        "FSDPPrecision",
        "HalfPrecision",
        "MixedPrecision",
        "Precision",
        "TransformerEnginePrecision",
        "XLAPrecision",
    },
    "plugins.io": {"AsyncCheckpointIO", "CheckpointIO", "TorchCheckpointIO", "XLACheckpointIO"},
    "core": {"LightningDataModule", "LightningModule"},
    "utilities": {
        "AttributeDict",
        "CombinedLoader",
        "disable_possible_user_warnings",
        "find_shared_parameters",
        "grad_norm",
        "GradClipAlgorithmType",
        "is_picklable",
        "is_shared_filesystem",
        "LightningEnum",
        "measure_flops",
        "move_data_to_device",
        "rank_zero_deprecation",
        "rank_zero_info",
        "rank_zero_only",
        "rank_zero_warn",
        "set_shared_parameters",
        "suggested_max_num_workers",
    },
}


@pytest.mark.parametrize("package", sorted(EXPECTED_ALL))
def test_all_matches_lightning_minus_planned_names(package: str) -> None:
    module = importlib.import_module("fulmen" + (f".{package}" if package else ""))
    expected = EXPECTED_ALL[package] - NOT_YET.get(package, set())
    assert set(module.__all__) == expected
    for name in module.__all__:
        assert getattr(module, name) is not None


@pytest.mark.compat
@pytest.mark.parametrize("package", sorted(EXPECTED_ALL))
def test_expected_all_is_lightnings(package: str) -> None:
    pytest.importorskip("pytorch_lightning")
    theirs = importlib.import_module("pytorch_lightning" + (f".{package}" if package else ""))
    assert set(theirs.__all__) == EXPECTED_ALL[package]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("fulmen.callbacks.early_stopping", "EarlyStopping"),
        ("fulmen.callbacks.model_checkpoint", "ModelCheckpoint"),
        ("fulmen.callbacks.progress", "TQDMProgressBar"),
        ("fulmen.callbacks.progress.tqdm_progress", "TQDMProgressBar"),
        ("fulmen.callbacks.lr_monitor", "LearningRateMonitor"),
        ("fulmen.callbacks.model_summary", "ModelSummary"),
        ("fulmen.callbacks.prediction_writer", "BasePredictionWriter"),
        ("fulmen.loggers.tensorboard", "TensorBoardLogger"),
        ("fulmen.loggers.csv_logs", "CSVLogger"),
        ("fulmen.loggers.logger", "Logger"),
        ("fulmen.profilers.simple", "SimpleProfiler"),
        ("fulmen.plugins.environments", "LightningEnvironment"),
        ("fulmen.tuner", "Tuner"),
        ("fulmen.core.module", "LightningModule"),
        ("fulmen.core.datamodule", "LightningDataModule"),
        ("fulmen.core.hooks", "ModelHooks"),
        ("fulmen.core.saving", "load_hparams_from_yaml"),
        ("fulmen.core.optimizer", "LightningOptimizer"),
        ("fulmen.utilities", "rank_zero_only"),
        ("fulmen.utilities.rank_zero", "rank_zero_info"),
        ("fulmen.utilities.seed", "isolate_rng"),
        ("fulmen.utilities.model_summary", "ModelSummary"),
        ("fulmen.utilities.model_summary", "summarize"),
        ("fulmen.utilities.exceptions", "MisconfigurationException"),
        ("fulmen.utilities.types", "STEP_OUTPUT"),
        ("fulmen.utilities.types", "LRSchedulerConfig"),
        ("fulmen.utilities.parsing", "AttributeDict"),
        ("fulmen.demos.boring_classes", "BoringModel"),
        ("fulmen.demos.boring_classes", "BoringDataModule"),
        ("fulmen.demos.boring_classes", "RandomDataset"),
        ("fulmen.trainer.states", "TrainerFn"),
    ],
)
def test_lightning_import_paths_exist(path: str, name: str) -> None:
    assert hasattr(importlib.import_module(path), name)


def test_subpackages_are_reachable_as_attributes_after_a_plain_import() -> None:
    # Lightning scripts write `pl.loggers.CSVLogger(...)` or `pl.callbacks.EarlyStopping(...)`.
    code = (
        "import sys, fulmen as pl; "
        "assert 'fulmen.loggers' not in sys.modules; "
        "print(pl.loggers.CSVLogger.__name__, pl.callbacks.EarlyStopping.__name__, "
        "pl.profilers.SimpleProfiler.__name__, pl.strategies.DDPStrategy.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["CSVLogger", "EarlyStopping", "SimpleProfiler", "DDPStrategy"]
