"""Check the Trainer's arguments and build its parts (accelerator, strategy, loggers, callbacks).

Every check raises at `Trainer(...)` with a message that names the argument, shows the value and
says what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch

from fulmen.accelerators import Accelerator, CPUAccelerator, CUDAAccelerator, MPSAccelerator
from fulmen.callbacks.callback import Callback
from fulmen.plugins.environments import ClusterEnvironment, detect_cluster_environment
from fulmen.plugins.io import CheckpointIO
from fulmen.plugins.layer_sync import LayerSync
from fulmen.plugins.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision
from fulmen.strategies import (
    UNSUPPORTED_STRATEGIES,
    ParallelStrategy,
    SingleDeviceStrategy,
    Strategy,
    StrategyRegistry,
)
from fulmen.utilities.exceptions import MisconfigurationException

if TYPE_CHECKING:
    from fulmen.loggers.logger import Logger
    from fulmen.profilers.profiler import Profiler

_PRECISIONS = {
    64: "64-true",
    "64": "64-true",
    "64-true": "64-true",
    32: "32-true",
    "32": "32-true",
    "32-true": "32-true",
    16: "16-mixed",
    "16": "16-mixed",
    "16-mixed": "16-mixed",
    "16-true": "16-true",
    "bf16": "bf16-mixed",
    "bf16-mixed": "bf16-mixed",
    "bf16-true": "bf16-true",
}
_ACCELERATORS: dict[str, type[Accelerator]] = {
    "cpu": CPUAccelerator,
    "cuda": CUDAAccelerator,
    "mps": MPSAccelerator,
}

# Trainer arguments Lightning 2 removed, with what replaced them.
REMOVED_ARGUMENTS = {
    "gpus": "accelerator='gpu', devices=N",
    "tpu_cores": "accelerator='tpu', devices=N",
    "ipus": "(IPUs are not supported)",
    "num_processes": "accelerator='cpu', devices=N",
    "auto_select_gpus": "devices=find_usable_cuda_devices(N)",
    "resume_from_checkpoint": "trainer.fit(model, ckpt_path=...)",
    "track_grad_norm": "fulmen.utilities.grad_norm in on_before_optimizer_step",
    "amp_backend": "precision='16-mixed'",
    "amp_level": "precision='16-mixed'",
    "replace_sampler_ddp": "use_distributed_sampler",
    "move_metrics_to_cpu": "(metrics stay on device until read)",
    "multiple_trainloader_mode": "CombinedLoader(loaders, mode=...)",
    "progress_bar_refresh_rate": "callbacks=[TQDMProgressBar(refresh_rate=N)]",
    "weights_summary": "enable_model_summary / callbacks=[ModelSummary(max_depth=N)]",
    "terminate_on_nan": "detect_anomaly=True or EarlyStopping(check_finite=True)",
    "flush_logs_every_n_steps": "the logger's own flush setting",
    "stochastic_weight_avg": "callbacks=[StochasticWeightAveraging(...)]",
    "truncated_bptt_steps": "(removed; split sequences in training_step)",
    "prepare_data_per_node": "LightningModule.prepare_data_per_node",
    "checkpoint_callback": "enable_checkpointing",
    "weights_save_path": "ModelCheckpoint(dirpath=...)",
}


def check_int(
    name: str, value: Any, minimum: int, allow_none: bool = False, note: str = ""
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = f" ({note})" if note else ""
        raise ValueError(
            f"Trainer({name}={value!r}) is invalid: expected an int >= {minimum}{extra}"
            + (" or None." if allow_none else ".")
        )


def check_scalars(
    *,
    max_epochs: Any,
    min_epochs: Any,
    max_steps: Any,
    min_steps: Any,
    check_val_every_n_epoch: Any,
    num_sanity_val_steps: Any,
    log_every_n_steps: Any,
    accumulate_grad_batches: Any,
    reload_dataloaders_every_n_epochs: Any,
    gradient_clip_val: Any,
    gradient_clip_algorithm: Any,
    deterministic: Any,
    overfit_batches: Any,
    **flags: Any,
) -> None:
    """Check the Trainer's counts, numbers and boolean flags (names in `flags` must be bools)."""
    check_int("max_epochs", max_epochs, -1, allow_none=True, note="-1 means no limit")
    check_int("min_epochs", min_epochs, 0, allow_none=True)
    check_int("max_steps", max_steps, -1, note="-1 means no limit")
    check_int("min_steps", min_steps, 0, allow_none=True)
    check_int("check_val_every_n_epoch", check_val_every_n_epoch, 1, allow_none=True)
    check_int("num_sanity_val_steps", num_sanity_val_steps, -1, allow_none=True, note="-1 runs all")
    check_int("log_every_n_steps", log_every_n_steps, 0, allow_none=True)
    check_int("accumulate_grad_batches", accumulate_grad_batches, 1)
    check_int("reload_dataloaders_every_n_epochs", reload_dataloaders_every_n_epochs, 0)
    # NaN passes every comparison, so ranges are written as `not (low <= value)`.
    if gradient_clip_val is not None and (
        isinstance(gradient_clip_val, bool)
        or not isinstance(gradient_clip_val, (int, float))
        or not gradient_clip_val >= 0
    ):
        raise ValueError(
            f"Trainer(gradient_clip_val={gradient_clip_val!r}) is invalid: expected a number >= 0 "
            "(0 or None: no clipping)."
        )
    if gradient_clip_algorithm is not None and (
        not isinstance(gradient_clip_algorithm, str)
        or gradient_clip_algorithm.lower() not in ("norm", "value")
    ):
        raise ValueError(
            f"Trainer(gradient_clip_algorithm={gradient_clip_algorithm!r}) is invalid: expected "
            "'norm', 'value' or None."
        )
    if not (deterministic is None or isinstance(deterministic, bool) or deterministic == "warn"):
        raise ValueError(
            f"Trainer(deterministic={deterministic!r}) is invalid: expected True, False, 'warn' or None."
        )
    if (
        isinstance(overfit_batches, bool)
        or not isinstance(overfit_batches, (int, float))
        or not overfit_batches >= 0
        or (isinstance(overfit_batches, float) and overfit_batches > 1)
    ):
        raise ValueError(
            f"Trainer(overfit_batches={overfit_batches!r}) is invalid: expected an int >= 0 "
            "(batches) or a float in [0.0, 1.0] (fraction)."
        )
    for flag_name, flag in flags.items():
        if not isinstance(flag, bool):
            raise ValueError(f"Trainer({flag_name}={flag!r}) is invalid: expected True or False.")


def check_optional_flags(**flags: Any) -> None:
    """Check flags whose None means "the default" (`enable_checkpointing`, `benchmark`...)."""
    for name, flag in flags.items():
        if flag is not None and not isinstance(flag, bool):
            raise ValueError(
                f"Trainer({name}={flag!r}) is invalid: expected True, False or None (the default)."
            )


def check_default_root_dir(value: Any) -> str | None:
    """A folder path (str or os.PathLike), or None for the working directory."""
    if value is None:
        return None
    path = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(path, str) or not path or "\x00" in path:
        raise TypeError(
            f"Trainer(default_root_dir={value!r}) is invalid: expected a non-empty folder path "
            "(a str or os.PathLike) or None for the working directory."
        )
    return path


def check_barebones(**explicit: Any) -> None:
    """`barebones=True` turns these off: an explicit request for one of them is a conflict."""
    for key, value in explicit.items():
        if value:
            raise ValueError(
                f"Trainer(barebones=True, {key}={value!r}) conflict: barebones turns "
                f"{key} off. Drop one of the two."
            )


def check_limit(name: str, value: Any) -> int | float:
    """An int count of batches, or a float fraction in [0, 1]."""
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Trainer({name}={value!r}) is invalid: expected an int (number of batches) or a "
            "float in [0.0, 1.0] (fraction of batches)."
        )
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        raise ValueError(
            f"Trainer({name}={value!r}) is invalid: a float must be in [0.0, 1.0] (a fraction of "
            "the batches); pass an int for a number of batches."
        )
    if isinstance(value, int) and value < 0:
        raise ValueError(f"Trainer({name}={value!r}) is invalid: a number of batches must be >= 0.")
    return value


def parse_duration(name: str, value: Any) -> timedelta | None:
    """`"DD:HH:MM:SS"`, a timedelta or a dict of timedelta arguments; never negative."""
    if value is None:
        return None
    duration: timedelta | None = None
    detail = ""
    try:
        if isinstance(value, timedelta):
            duration = value
        elif isinstance(value, dict):
            duration = timedelta(**value)
        elif isinstance(value, str):
            parts = value.split(":")
            # isdecimal, not isdigit: int() rejects superscripts and other "digits".
            if len(parts) == 4 and all(p.strip().isdecimal() for p in parts):
                days, hours, minutes, seconds = (int(p) for p in parts)
                duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except (TypeError, ValueError, OverflowError) as err:
        detail = f" ({err})"
    if duration is not None and duration >= timedelta(0):
        return duration
    raise ValueError(
        f"Trainer({name}={value!r}) is invalid{detail}: expected a duration >= 0 as "
        "'DD:HH:MM:SS', a datetime.timedelta or a dict such as {'hours': 1}."
    )


def check_val_check_interval(
    value: Any, check_val_every_n_epoch: int | None
) -> int | float | timedelta:
    if value is None:
        return 1.0
    if isinstance(value, (str, dict, timedelta)):
        # A zero duration validates after every batch, as in Lightning.
        duration = parse_duration("val_check_interval", value)
        assert duration is not None
        return duration
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Trainer(val_check_interval={value!r}) is invalid: expected a float in (0.0, 1.0] "
            "(fraction of an epoch), an int >= 1 (every N training batches) or a duration."
        )
    if isinstance(value, float) and not 0.0 < value <= 1.0:
        raise ValueError(
            f"Trainer(val_check_interval={value!r}) is invalid: a float must be in (0.0, 1.0]; "
            "pass an int to validate every N training batches."
        )
    if isinstance(value, int) and value < 1:
        raise ValueError(f"Trainer(val_check_interval={value!r}) is invalid: an int must be >= 1.")
    if isinstance(value, float) and check_val_every_n_epoch is None:
        raise ValueError(
            f"Trainer(val_check_interval={value!r}, check_val_every_n_epoch=None) is invalid: a "
            "fraction of an epoch needs epochs. Pass an int number of batches or a duration, or "
            "set check_val_every_n_epoch."
        )
    return value


def check_fast_dev_run(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value >= 0:
        return value
    raise ValueError(
        f"Trainer(fast_dev_run={value!r}) is invalid: expected a bool or an int >= 0 (number of "
        "batches to run)."
    )


def select_precision(value: Any, device_type: str) -> Precision:
    if isinstance(value, Precision):
        return value
    key = "32-true" if value is None else value
    # 16.0 == 16 and True == 1 as dict keys: only the exact int and str spellings count.
    precision = _PRECISIONS.get(key) if type(key) in (int, str) else None
    if precision is None:
        raise ValueError(
            f"Trainer(precision={value!r}) is not supported. Choose one of "
            "'64-true', '32-true', '16-mixed', 'bf16-mixed', '16-true', 'bf16-true' "
            "(or 64, 32, 16, 'bf16')."
        )
    if precision == "64-true":
        return DoublePrecision()
    if precision in ("16-true", "bf16-true"):
        return HalfPrecision(precision)
    if precision in ("16-mixed", "bf16-mixed"):
        if precision == "16-mixed" and device_type == "cpu":
            raise MisconfigurationException(
                f"Trainer(precision={value!r}) means '16-mixed', which needs a CUDA device "
                "(float16 autocast with loss scaling). On the CPU use precision='bf16-mixed'."
            )
        return MixedPrecision(precision, device=device_type)
    return Precision()


def select_accelerator(value: Any) -> Accelerator:
    if isinstance(value, Accelerator):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"Trainer(accelerator={value!r}) is invalid: expected one of 'auto', 'cpu', 'gpu', "
            "'cuda', 'mps' or an Accelerator instance."
        )
    name = value.lower()
    if name == "auto":
        if CUDAAccelerator.is_available():
            return CUDAAccelerator()
        if MPSAccelerator.is_available():
            return MPSAccelerator()
        return CPUAccelerator()
    if name == "gpu":
        if CUDAAccelerator.is_available():
            return CUDAAccelerator()
        if MPSAccelerator.is_available():
            return MPSAccelerator()
        raise MisconfigurationException(
            "Trainer(accelerator='gpu') found no GPU (neither CUDA nor MPS) on this machine. "
            "Use accelerator='cpu' or 'auto'."
        )
    if name == "tpu":
        raise MisconfigurationException(
            "Trainer(accelerator='tpu'): TPUs are not supported by fulmen."
        )
    if name not in _ACCELERATORS:
        raise ValueError(
            f"Trainer(accelerator={value!r}) is not a known accelerator. Choose one of "
            "['auto', 'cpu', 'cuda', 'gpu', 'mps'] or pass an Accelerator instance."
        )
    accelerator = _ACCELERATORS[name]
    if not accelerator.is_available():
        raise MisconfigurationException(
            f"Trainer(accelerator={value!r}) is not available on this machine. Use "
            "accelerator='cpu' or 'auto'."
        )
    return accelerator()


def select_strategy(
    value: Any,
    accelerator: Accelerator,
    devices: Any,
    num_nodes: Any,
    precision: Precision,
    plugins: Plugins,
    sync_batchnorm: bool,
) -> Strategy:
    check_int("num_nodes", num_nodes, 1)
    check_devices(devices)
    try:
        # The accelerators read a list of indices; a tuple means the same.
        indices = list(devices) if isinstance(devices, tuple) else devices
        parallel = accelerator.get_parallel_devices(accelerator.parse_devices(indices))
    except (MisconfigurationException, ValueError, TypeError) as err:
        if f"devices={devices!r}" in str(err):
            raise
        # The accelerator reports the value it parsed ('2' as 2), or int() failed on it: show
        # what the user passed.
        message = f"Trainer(devices={devices!r}) is invalid for {type(accelerator).__name__}: {err}"
        if isinstance(err, MisconfigurationException):
            raise MisconfigurationException(message) from err
        raise ValueError(message) from err
    if isinstance(value, Strategy):
        strategy = value
    else:
        if not isinstance(value, str):
            raise ValueError(
                f"Trainer(strategy={value!r}) is invalid: expected a strategy name or a Strategy."
            )
        name = value.lower()
        if name in UNSUPPORTED_STRATEGIES:
            raise MisconfigurationException(
                f"Trainer(strategy={value!r}) is not supported by fulmen. Use 'ddp' (or "
                "'ddp_spawn') for data parallel training, or 'fsdp' to shard a large model."
            )
        multi = len(parallel) > 1 or num_nodes > 1 or _launched_externally()
        if name == "auto":
            name = "ddp" if multi else "single_device"
        if name == "single_device":
            if len(parallel) > 1 or num_nodes > 1:
                raise MisconfigurationException(
                    f"Trainer(strategy='single_device', devices={devices!r}, "
                    f"num_nodes={num_nodes!r}) runs one device only. Use strategy='ddp' for "
                    "several devices."
                )
            strategy = SingleDeviceStrategy(device=parallel[0])
        elif name in StrategyRegistry:
            strategy = StrategyRegistry[name]()
        else:
            raise ValueError(
                f"Trainer(strategy={value!r}) is not a known strategy. Choose one of "
                f"{sorted(['auto', 'single_device', *StrategyRegistry])} or pass a Strategy."
            )
    if strategy.accelerator is None:
        strategy.accelerator = accelerator
    strategy.precision_plugin = plugins.precision or precision
    if plugins.checkpoint_io is not None:
        strategy.checkpoint_io = plugins.checkpoint_io
    if isinstance(strategy, ParallelStrategy):
        if not strategy.parallel_devices:
            strategy.parallel_devices = parallel
        if plugins.cluster_environment is not None:
            strategy.cluster_environment = plugins.cluster_environment
        elif strategy.cluster_environment is None:
            strategy.cluster_environment = detect_cluster_environment()
        strategy.num_nodes = num_nodes  # type: ignore[misc]
        strategy.sync_batchnorm = sync_batchnorm or plugins.layer_sync is not None  # type: ignore[attr-defined]
        strategy.cluster_environment.validate_settings(len(strategy.parallel_devices), num_nodes)
        strategy.configure_launcher()
    return strategy


# More devices than any one machine holds: a bound that keeps a typo from building a huge list.
MAX_DEVICES_PER_NODE = 1 << 16


def check_devices(devices: Any) -> None:
    """'auto', -1 (all), a count >= 1, a str of either or of indices ('0,1'), or a list of indices.

    Counts go up to `MAX_DEVICES_PER_NODE`, indices below it. Whether the devices exist is the
    accelerator's check (`parse_devices`).
    """
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:
            # A list of indices; "1," is Lightning's spelling of "device 1 only".
            numbers = [_as_number(item.strip()) for item in text.removesuffix(",").split(",")]
            indices = [n for n in numbers if n is not None and n < MAX_DEVICES_PER_NODE]
            if len(indices) == len(numbers) == len(set(indices)):
                return
        else:
            count = _as_number(text)
            if devices == "auto" or text == "-1" or (count and count <= MAX_DEVICES_PER_NODE):
                return
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if devices == -1 or 1 <= devices <= MAX_DEVICES_PER_NODE:
            return
    elif isinstance(devices, (list, tuple)):
        if (
            devices
            and all(type(d) is int and 0 <= d < MAX_DEVICES_PER_NODE for d in devices)
            and len(set(devices)) == len(devices)
        ):
            return
    raise ValueError(
        f"Trainer(devices={devices!r}) is invalid: expected 'auto', -1 (all), a count >= 1, a "
        "str such as '2' or '0,1', or a list of distinct device indices such as [0, 1] "
        f"(at most {MAX_DEVICES_PER_NODE} per node)."
    )


def _as_number(text: str) -> int | None:
    # The length bound comes first: int() of a very long digit string is slow or refused.
    return int(text) if 0 < len(text) <= 6 and text.isdecimal() else None


def _launched_externally() -> bool:
    """Whether torchrun, SLURM (srun) or similar started this process as one of several."""
    return (
        int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("SLURM_NTASKS", "1")) > 1
    )


class Plugins:
    """The Trainer's `plugins=` argument, sorted by kind."""

    def __init__(self, plugins: Any) -> None:
        items = (
            [] if plugins is None else plugins if isinstance(plugins, (list, tuple)) else [plugins]
        )
        self.precision: Precision | None = None
        self.checkpoint_io: CheckpointIO | None = None
        self.cluster_environment: ClusterEnvironment | None = None
        self.layer_sync: LayerSync | None = None
        slots = (
            ("precision", Precision),
            ("checkpoint_io", CheckpointIO),
            ("cluster_environment", ClusterEnvironment),
            ("layer_sync", LayerSync),
        )
        for plugin in items:
            for slot, kind in slots:
                if isinstance(plugin, kind):
                    if getattr(self, slot) is not None:
                        raise MisconfigurationException(
                            f"Trainer(plugins={plugins!r}) got more than one {kind.__name__} "
                            f"({type(getattr(self, slot)).__name__} and {type(plugin).__name__})."
                        )
                    setattr(self, slot, plugin)
                    break
            else:
                raise ValueError(
                    f"Trainer(plugins={plugins!r}) is invalid: {plugin!r} is not a plugin fulmen "
                    "knows. Expected Precision, CheckpointIO, ClusterEnvironment or LayerSync "
                    "instances."
                )


def build_loggers(logger: Any, default_root_dir: str, active: bool) -> list[Logger]:
    from fulmen.loggers import CSVLogger, Logger, TensorBoardLogger
    from fulmen.loggers.tensorboard import tensorboard_available

    if not active or logger is False:
        return []
    if logger is None or logger is True:
        if tensorboard_available():
            return [TensorBoardLogger(save_dir=default_root_dir)]
        return [CSVLogger(save_dir=default_root_dir)]
    # A str or a dict is iterable too, but never a collection of loggers.
    is_collection = isinstance(logger, Iterable) and not isinstance(logger, (str, bytes, Mapping))
    loggers = list(logger) if is_collection else [logger]
    for item in loggers:
        if not isinstance(item, Logger):
            raise ValueError(
                f"Trainer(logger={logger!r}) is invalid: expected True, False, None, a Logger or "
                "a list of Loggers."
            )
    return loggers


def build_profiler(profiler: Any, active: bool) -> Profiler:
    from fulmen.profilers import (
        AdvancedProfiler,
        PassThroughProfiler,
        Profiler,
        PyTorchProfiler,
        SimpleProfiler,
    )

    if isinstance(profiler, Profiler):
        return profiler
    if profiler is None or not active:
        return PassThroughProfiler()
    names: dict[str, type[Profiler]] = {
        "simple": SimpleProfiler,
        "advanced": AdvancedProfiler,
        "pytorch": PyTorchProfiler,
    }
    if isinstance(profiler, str) and profiler.lower() in names:
        return names[profiler.lower()]()
    raise ValueError(
        f"Trainer(profiler={profiler!r}) is not a known profiler. Choose one of "
        f"{sorted(names)} or pass a Profiler instance."
    )


def build_callbacks(
    callbacks: Any,
    enable_checkpointing: bool,
    enable_progress_bar: bool,
    enable_model_summary: bool,
    max_time: timedelta | None,
) -> list[Callback]:
    from fulmen.callbacks import (
        Checkpoint,
        ModelCheckpoint,
        ModelSummary,
        ProgressBar,
        Timer,
        TQDMProgressBar,
    )

    given = (
        []
        if callbacks is None
        else callbacks
        if isinstance(callbacks, (list, tuple))
        else [callbacks]
    )
    for cb in given:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"Trainer(callbacks={callbacks!r}) is invalid: {cb!r} is not a fulmen.Callback "
                "instance. Pass a Callback or a list of Callbacks."
            )
    result = list(given)
    has_checkpoint = any(isinstance(cb, Checkpoint) for cb in result)
    if not enable_checkpointing and has_checkpoint:
        raise MisconfigurationException(
            "Trainer(enable_checkpointing=False) was given a ModelCheckpoint in `callbacks`. "
            "Remove one of the two."
        )
    bars = [cb for cb in result if isinstance(cb, ProgressBar)]
    if len(bars) > 1:
        raise MisconfigurationException("Trainer(callbacks=...) has more than one progress bar.")
    if bars and not enable_progress_bar:
        raise MisconfigurationException(
            "Trainer(enable_progress_bar=False) was given a progress bar in `callbacks`. Remove "
            "one of the two."
        )
    if enable_progress_bar and not bars:
        result.append(TQDMProgressBar())
    if enable_model_summary and not any(isinstance(cb, ModelSummary) for cb in result):
        result.append(ModelSummary())
    if max_time is not None:
        result.append(Timer(duration=max_time, interval="step"))
    if enable_checkpointing and not has_checkpoint:
        result.append(ModelCheckpoint())
    return order_callbacks(result)


def order_callbacks(callbacks: list[Callback]) -> list[Callback]:
    """Tuner callbacks first, checkpoint callbacks last (so they see what others changed)."""
    from fulmen.callbacks import Checkpoint

    tuners = [
        cb for cb in callbacks if type(cb).__name__ in ("BatchSizeFinder", "LearningRateFinder")
    ]
    checkpoints = [cb for cb in callbacks if isinstance(cb, Checkpoint)]
    others = [cb for cb in callbacks if cb not in tuners and cb not in checkpoints]
    return tuners + others + checkpoints


def as_device_type(strategy: Strategy) -> str:
    device: torch.device = strategy.root_device
    return device.type
