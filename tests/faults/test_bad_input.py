"""Bad Trainer arguments: each one is refused early, with a message naming it and showing its value.

Three views of the same contract, over every argument of `Trainer.__init__`:

- `BAD_VALUES`, a table with at least one wrong-type value per argument and out-of-range values
  where a range exists. Each is refused at `Trainer(...)`, or, for the few that only the data can
  judge (`FIT_TIME_BAD_VALUES`), at the start of `fit`, before any training step or checkpoint.
- `ALLOWED`, the documented set of accepted values of each argument, written as a predicate.
  Hypothesis draws arbitrary values (numbers with NaN and infinities, strings, containers, odd
  objects) and checks that `Trainer` accepts exactly the allowed ones, and refuses the rest with a
  ValueError, TypeError or MisconfigurationException that shows `name=value` (never another kind of
  exception, such as an AttributeError from deep inside).
- `EDGE_VALUES`: accepted values at the edges of the allowed sets run a short `fit` without error,
  so an accepted value never crashes later.

A new Trainer argument without an entry in each table fails `test_every_argument_has_...`.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fulmen
from fulmen.accelerators import Accelerator, CPUAccelerator
from fulmen.callbacks import Callback, EarlyStopping
from fulmen.demos.boring_classes import BoringModel, ManualOptimBoringModel
from fulmen.loggers import CSVLogger, Logger
from fulmen.plugins import TorchCheckpointIO
from fulmen.plugins.environments import ClusterEnvironment, LightningEnvironment
from fulmen.plugins.io import CheckpointIO
from fulmen.plugins.layer_sync import LayerSync
from fulmen.plugins.precision import Precision
from fulmen.profilers import Profiler, SimpleProfiler
from fulmen.strategies import SingleDeviceStrategy, Strategy
from fulmen.utilities.exceptions import MisconfigurationException
from tests.faults.conftest import FaultReport

CLEAR_ERRORS = (ValueError, TypeError, MisconfigurationException)

# Trainer arguments switched off so that building a Trainer is cheap and writes nothing; an
# argument under test is taken out of this and given on its own.
LIGHT: dict[str, Any] = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def trainer_arguments() -> list[str]:
    """The names `Trainer(...)` takes (its `**removed` catch-all only turns old names away)."""
    signature = inspect.signature(fulmen.Trainer.__init__)
    return [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]


def build(name: str, value: Any, **context: Any) -> fulmen.Trainer:
    """Build a Trainer with `name=value` over the light defaults (minus `name`)."""
    options = {key: v for key, v in LIGHT.items() if key != name}
    options.update(context)
    options[name] = value
    with preserved_torch_flags():
        return fulmen.Trainer(**options)


@contextmanager
def preserved_torch_flags() -> Iterator[None]:
    # `deterministic` and `benchmark` set process-wide torch flags: keep them from leaking.
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def case_id(name: str, value: Any) -> str:
    """A test id that stays the same between runs (no memory addresses)."""
    return re.sub(r" (object )?at 0x[0-9a-f]+", "", f"{name}={value!r}")


def shows(name: str, value: Any, message: str) -> bool:
    """Whether the message names the argument and shows the value as the user wrote it."""
    return f"{name}={value!r}" in message


class Opaque:
    """An object of a class no argument accepts."""

    def __repr__(self) -> str:
        return "Opaque()"


# ------------------------------------------------------------------ the table of bad values

BAD_VALUES: list[tuple[str, Any]] = [
    ("accelerator", 42),
    ("accelerator", None),
    ("accelerator", "abacus"),
    ("accelerator", "tpu"),
    ("strategy", 3.5),
    ("strategy", "telepathy"),
    ("strategy", "deepspeed"),
    ("devices", 1.5),
    ("devices", True),
    ("devices", None),
    ("devices", 0),
    ("devices", -2),
    ("devices", 10**30),
    ("devices", "x"),
    ("devices", ""),
    ("devices", "0"),
    ("devices", []),
    ("devices", [0, 0]),
    ("devices", [-1]),
    ("num_nodes", 0),
    ("num_nodes", -1),
    ("num_nodes", 1.5),
    ("num_nodes", "2"),
    ("num_nodes", True),
    ("precision", "8-bit"),
    ("precision", 16.0),
    ("precision", True),
    ("precision", [32]),
    ("precision", "16-mixed"),  # on the CPU: float16 autocast needs CUDA
    ("logger", "tensorboard"),
    ("logger", 1),
    ("logger", [1]),
    ("logger", {}),
    ("callbacks", 1),
    ("callbacks", "x"),
    ("callbacks", [Opaque()]),
    ("callbacks", {}),
    ("fast_dev_run", -1),
    ("fast_dev_run", 1.5),
    ("fast_dev_run", "yes"),
    ("max_epochs", -2),
    ("max_epochs", 1.5),
    ("max_epochs", "10"),
    ("min_epochs", -1),
    ("min_epochs", 0.5),
    ("min_epochs", "1"),
    ("max_steps", -2),
    ("max_steps", None),
    ("max_steps", 2.0),
    ("min_steps", -1),
    ("min_steps", "3"),
    ("min_steps", 1.5),
    ("max_time", "1 hour"),
    ("max_time", "00:01:00"),
    ("max_time", {"hours": -1}),
    ("max_time", {"lightyears": 1}),
    ("max_time", {"hours": math.nan}),
    ("max_time", timedelta(seconds=-1)),
    ("max_time", 5),
    ("limit_train_batches", 1.5),
    ("limit_train_batches", -1),
    ("limit_train_batches", math.nan),
    ("limit_val_batches", -1),
    ("limit_val_batches", "all"),
    ("limit_test_batches", "all"),
    ("limit_test_batches", -0.1),
    ("limit_predict_batches", True),
    ("limit_predict_batches", math.inf),
    ("overfit_batches", -1),
    ("overfit_batches", 1.5),
    ("overfit_batches", math.nan),
    ("overfit_batches", "1"),
    ("overfit_batches", None),
    ("val_check_interval", 0.0),
    ("val_check_interval", 1.5),
    ("val_check_interval", 0),
    ("val_check_interval", True),
    ("val_check_interval", "soon"),
    ("val_check_interval", {"seconds": -1}),
    ("val_check_interval", math.nan),
    ("check_val_every_n_epoch", 0),
    ("check_val_every_n_epoch", 1.5),
    ("check_val_every_n_epoch", "1"),
    ("check_val_every_n_epoch", True),
    ("num_sanity_val_steps", -2),
    ("num_sanity_val_steps", 1.5),
    ("num_sanity_val_steps", "2"),
    ("log_every_n_steps", -1),
    ("log_every_n_steps", 2.5),
    ("log_every_n_steps", "50"),
    ("enable_checkpointing", "yes"),
    ("enable_checkpointing", 1),
    ("enable_progress_bar", "no"),
    ("enable_progress_bar", 0),
    ("enable_model_summary", "true"),
    ("enable_model_summary", [True]),
    ("accumulate_grad_batches", 0),
    ("accumulate_grad_batches", 2.5),
    ("accumulate_grad_batches", "4"),
    ("accumulate_grad_batches", None),
    ("gradient_clip_val", -1.0),
    ("gradient_clip_val", math.nan),
    ("gradient_clip_val", "1"),
    ("gradient_clip_val", True),
    ("gradient_clip_algorithm", "l2"),
    ("gradient_clip_algorithm", 2),
    ("gradient_clip_algorithm", True),
    ("deterministic", "sometimes"),
    ("deterministic", 1),
    ("deterministic", 0.5),
    ("benchmark", "fast"),
    ("benchmark", 1),
    ("inference_mode", "yes"),
    ("inference_mode", 1),
    ("inference_mode", None),
    ("use_distributed_sampler", "yes"),
    ("use_distributed_sampler", None),
    ("profiler", "stopwatch"),
    ("profiler", 1),
    ("profiler", True),
    ("detect_anomaly", "yes"),
    ("detect_anomaly", 1),
    ("barebones", "yes"),
    ("barebones", 1),
    ("plugins", "x"),
    ("plugins", 1),
    ("plugins", [Opaque()]),
    ("plugins", [TorchCheckpointIO(), TorchCheckpointIO()]),
    ("sync_batchnorm", "yes"),
    ("sync_batchnorm", 1),
    ("reload_dataloaders_every_n_epochs", -1),
    ("reload_dataloaders_every_n_epochs", 1.5),
    ("reload_dataloaders_every_n_epochs", "1"),
    ("default_root_dir", 42),
    ("default_root_dir", ""),
    ("default_root_dir", b"logs"),
    ("default_root_dir", "a\x00b"),
    ("enable_autolog_hparams", "yes"),
    ("enable_autolog_hparams", 1),
    ("model_registry", "my-registry"),  # any value: fulmen connects to no registry
    ("model_registry", 42),
    ("auto_lr_find", 1),
    ("auto_lr_find", ""),
    ("auto_lr_find", 0.1),
    ("auto_scale_batch_size", "fast"),
    ("auto_scale_batch_size", 1),
]

# A value that is wrong only next to another argument.
BAD_COMBINATIONS: list[tuple[str, Any, dict[str, Any]]] = [
    ("val_check_interval", 0.5, {"check_val_every_n_epoch": None}),
    ("enable_checkpointing", True, {"barebones": True}),
    ("devices", 2, {"strategy": "single_device"}),
]


@pytest.mark.parametrize(
    ("name", "value"), BAD_VALUES, ids=[case_id(name, value) for name, value in BAD_VALUES]
)
def test_a_bad_value_is_refused_at_construction_naming_argument_and_value(
    name: str, value: Any, fault_report: FaultReport
) -> None:
    with pytest.raises(CLEAR_ERRORS) as info:
        build(name, value)
    clear = shows(name, value, str(info.value))
    fault_report.record("bad Trainer argument", injections=1, recovered=int(clear))
    assert clear, str(info.value)


@pytest.mark.parametrize(
    ("name", "value", "context"),
    BAD_COMBINATIONS,
    ids=[f"{name}={value!r}-{context}" for name, value, context in BAD_COMBINATIONS],
)
def test_a_value_that_conflicts_with_another_argument_is_refused_naming_both(
    name: str, value: Any, context: dict[str, Any], fault_report: FaultReport
) -> None:
    with pytest.raises(CLEAR_ERRORS) as info:
        build(name, value, **context)
    message = str(info.value)
    clear = shows(name, value, message) and all(shows(k, v, message) for k, v in context.items())
    fault_report.record("bad Trainer argument", injections=1, recovered=int(clear))
    assert clear, message


# Values that only the data can judge: refused at the start of `fit`, before any training step
# and before any checkpoint is written. (The train dataloader is asked for after the sanity check,
# as in Lightning, so a logger may have created its folder by then.)
FIT_TIME_BAD_VALUES: list[tuple[str, Any, type[BoringModel]]] = [
    ("limit_train_batches", 0.001, BoringModel),  # less than one of its 64 batches
    ("val_check_interval", 1000, BoringModel),  # more batches than an epoch has
    ("accumulate_grad_batches", 2, ManualOptimBoringModel),  # manual optimization steps itself
    ("gradient_clip_val", 0.5, ManualOptimBoringModel),  # manual optimization clips itself
]


class StepCounting(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_start(self, *args: Any) -> None:
        self.steps += 1


@pytest.mark.parametrize(
    ("name", "value", "model_class"),
    FIT_TIME_BAD_VALUES,
    ids=[f"{name}={value!r}" for name, value, _ in FIT_TIME_BAD_VALUES],
)
def test_a_value_only_the_data_can_judge_is_refused_before_the_first_step(
    name: str, value: Any, model_class: type[BoringModel], tmp_path: Path, fault_report: FaultReport
) -> None:
    counter = StepCounting()
    trainer = build(
        name,
        value,
        default_root_dir=tmp_path / "run",
        enable_checkpointing=True,
        callbacks=[counter],
        max_steps=4,
    )
    with pytest.raises(CLEAR_ERRORS) as info:
        trainer.fit(model_class())
    written = sorted(p.name for p in (tmp_path / "run").rglob("*") if p.is_file())
    clear = shows(name, value, str(info.value)) and counter.steps == 0 and written == []
    fault_report.record("bad Trainer argument", injections=1, recovered=int(clear))
    assert shows(name, value, str(info.value)), str(info.value)
    assert counter.steps == 0
    assert written == []


UNKNOWN_NAMES: list[tuple[str, str, list[str]]] = [
    ("accelerator", "abacus", ["auto", "cpu", "cuda", "gpu", "mps"]),
    ("strategy", "telepathy", ["auto", "ddp", "ddp_spawn", "fsdp", "single_device"]),
    ("precision", "8-bit", ["64-true", "32-true", "16-mixed", "bf16-mixed", "16-true"]),
    ("profiler", "stopwatch", ["simple", "advanced", "pytorch"]),
]


@pytest.mark.parametrize(
    ("name", "value", "choices"), UNKNOWN_NAMES, ids=[n for n, *_ in UNKNOWN_NAMES]
)
def test_an_unknown_name_is_refused_with_the_list_of_known_ones(
    name: str, value: str, choices: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        build(name, value)
    message = str(info.value)
    assert shows(name, value, message)
    assert [choice for choice in choices if repr(choice) not in message] == []


# ------------------------------------------------------------------ the allowed sets


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_at_least(low: int, none: bool = False) -> Callable[[Any], bool]:
    return lambda value: (none and value is None) or (is_int(value) and value >= low)


def is_flag(value: Any) -> bool:
    return isinstance(value, bool)


def is_optional_flag(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def is_limit(value: Any) -> bool:
    """A number of batches, or a fraction of them."""
    return (
        value is None
        or (is_int(value) and value >= 0)
        or (isinstance(value, float) and 0.0 <= value <= 1.0)
    )


_DURATION = re.compile(r"\s*(\d+)\s*:\s*(\d+)\s*:\s*(\d+)\s*:\s*(\d+)\s*")


def as_duration(value: Any) -> timedelta | None:
    """The duration `value` stands for ('DD:HH:MM:SS', a timedelta, timedelta kwargs), or None."""
    if isinstance(value, timedelta):
        return value
    try:
        if isinstance(value, dict):
            return timedelta(**value)
        match = _DURATION.fullmatch(value) if isinstance(value, str) else None
        if match is not None:
            days, hours, minutes, seconds = (int(part) for part in match.groups())
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def is_max_time(value: Any) -> bool:
    duration = as_duration(value)
    return value is None or (duration is not None and duration >= timedelta(0))


def is_val_check_interval(value: Any) -> bool:
    duration = as_duration(value)
    return (
        value is None
        or (is_int(value) and value >= 1)
        or (isinstance(value, float) and 0.0 < value <= 1.0)
        or (duration is not None and duration >= timedelta(0))
    )


_CPU_PRECISIONS = {32, 64, "32", "64", "32-true", "64-true", "bf16", "bf16-mixed", "bf16-true"}


def is_cpu_precision(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, Precision)
        or (type(value) in (int, str) and (value in _CPU_PRECISIONS or value == "16-true"))
    )


def is_accelerator(value: Any) -> bool:
    names = {"auto", "cpu"}
    if torch.cuda.is_available():
        names |= {"cuda", "gpu"}
    if torch.backends.mps.is_available():
        names |= {"mps", "gpu"}
    return isinstance(value, Accelerator) or (isinstance(value, str) and value.lower() in names)


STRATEGY_NAMES = {
    "auto",
    "single_device",
    "ddp",
    "ddp_find_unused_parameters_false",
    "ddp_find_unused_parameters_true",
    "ddp_fork",
    "ddp_notebook",
    "ddp_spawn",
    "ddp_spawn_find_unused_parameters_false",
    "ddp_spawn_find_unused_parameters_true",
    "fsdp",
    "fsdp_cpu_offload",
}


def is_strategy(value: Any) -> bool:
    return isinstance(value, Strategy) or (
        isinstance(value, str) and value.lower() in STRATEGY_NAMES
    )


MAX_DEVICES = 1 << 16  # per node: counts up to it, indices below it
_DEVICE_COUNT = re.compile(r"\s*(\d{1,6})\s*")
_DEVICE_INDEX = re.compile(r"\s*(\d{1,6})\s*,\s*")


def is_cpu_devices(value: Any) -> bool:
    """On the CPU: 'auto', a count >= 1 (an int or its text), or a list of distinct indices.

    The CPU counts devices: a list stands for its length, and "N," (Lightning's spelling of
    "device N only") for N devices.
    """
    if value == "auto" and isinstance(value, str):
        return True
    if is_int(value):
        return bool(1 <= value <= MAX_DEVICES)
    if isinstance(value, str):
        count = _DEVICE_COUNT.fullmatch(value)
        index = _DEVICE_INDEX.fullmatch(value)
        return bool(
            (count and 1 <= int(count.group(1)) <= MAX_DEVICES)
            or (index and 1 <= int(index.group(1)) < MAX_DEVICES)
        )
    if isinstance(value, (list, tuple)):
        indices = [v for v in value if type(v) is int and 0 <= v < MAX_DEVICES]
        return 0 < len(indices) == len(value) == len(set(indices))
    return False


def is_logger(value: Any) -> bool:
    if value is None or isinstance(value, bool) or isinstance(value, Logger):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, Logger) for v in value)


def is_callbacks(value: Any) -> bool:
    if value is None or isinstance(value, Callback):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, Callback) for v in value)


_PLUGIN_KINDS = (Precision, CheckpointIO, ClusterEnvironment, LayerSync)


def is_plugins(value: Any) -> bool:
    items = [value] if not isinstance(value, (list, tuple)) else list(value)
    if value is None:
        return True
    kinds = [next((k for k in _PLUGIN_KINDS if isinstance(item, k)), None) for item in items]
    return None not in kinds and len(set(kinds)) == len(kinds)


def is_profiler(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, Profiler)
        or (isinstance(value, str) and value.lower() in {"simple", "advanced", "pytorch"})
    )


def is_root_dir(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, (str, os.PathLike)):
        return False
    path = os.fspath(value)
    return isinstance(path, str) and path != "" and "\x00" not in path


ALLOWED: dict[str, Callable[[Any], bool]] = {
    "accelerator": is_accelerator,
    "strategy": is_strategy,
    "devices": is_cpu_devices,
    "num_nodes": int_at_least(1),
    "precision": is_cpu_precision,
    "logger": is_logger,
    "callbacks": is_callbacks,
    "fast_dev_run": lambda v: isinstance(v, bool) or (is_int(v) and v >= 0),
    "max_epochs": int_at_least(-1, none=True),
    "min_epochs": int_at_least(0, none=True),
    "max_steps": int_at_least(-1),
    "min_steps": int_at_least(0, none=True),
    "max_time": is_max_time,
    "limit_train_batches": is_limit,
    "limit_val_batches": is_limit,
    "limit_test_batches": is_limit,
    "limit_predict_batches": is_limit,
    "overfit_batches": lambda v: v is not None and is_limit(v),
    "val_check_interval": is_val_check_interval,
    "check_val_every_n_epoch": int_at_least(1, none=True),
    "num_sanity_val_steps": int_at_least(-1, none=True),
    "log_every_n_steps": int_at_least(0, none=True),
    "enable_checkpointing": is_optional_flag,
    "enable_progress_bar": is_optional_flag,
    "enable_model_summary": is_optional_flag,
    "accumulate_grad_batches": int_at_least(1),
    "gradient_clip_val": lambda v: v is None or (is_number(v) and v >= 0),
    "gradient_clip_algorithm": lambda v: (
        v is None or (isinstance(v, str) and v.lower() in ("norm", "value"))
    ),
    "deterministic": lambda v: v is None or isinstance(v, bool) or v == "warn",
    "benchmark": is_optional_flag,
    "inference_mode": is_flag,
    "use_distributed_sampler": is_flag,
    "profiler": is_profiler,
    "detect_anomaly": is_flag,
    "barebones": is_flag,
    "plugins": is_plugins,
    "sync_batchnorm": is_flag,
    "reload_dataloaders_every_n_epochs": int_at_least(0),
    "default_root_dir": is_root_dir,
    "enable_autolog_hparams": is_flag,
    "model_registry": lambda v: v is None,
    "auto_lr_find": lambda v: isinstance(v, bool) or (isinstance(v, str) and v != ""),
    "auto_scale_batch_size": lambda v: isinstance(v, bool) or v in ("power", "binsearch"),
}

# Values worth trying for each argument besides the arbitrary ones: its names and spellings, so
# that the accepted side of each predicate is exercised too.
HINTS: dict[str, list[Any]] = {
    "accelerator": ["auto", "cpu", "CPU", "cuda", "gpu", "mps", "tpu", CPUAccelerator()],
    "strategy": [*sorted(STRATEGY_NAMES), "DDP", "deepspeed", "dp", SingleDeviceStrategy()],
    "devices": [
        "auto",
        "1",
        " 2 ",
        "2,",
        "0,",
        "0,1",
        "-1",
        -1,
        [0],
        (0, 1),
        [0, 0],
        65536,
        "65536,",
    ],
    "precision": [16, "16", "16-mixed", "16-true", "bf16", 32, "32-true", 64, 64.0, Precision()],
    "logger": [True, CSVLogger("csv"), [CSVLogger("csv")], (), "csv", {"csv": 1}],
    "callbacks": [Callback(), [Callback(), EarlyStopping("loss")], (), [None]],
    "max_time": ["00:00:01:00", " 1:2:3:4 ", "1:2:3", {"minutes": 5}, {"minutes": -5}],
    "val_check_interval": ["00:00:00:30", "00:00:00:00", {"seconds": -10}, timedelta(0)],
    "gradient_clip_algorithm": ["norm", "value", "VALUE", "l2"],
    "deterministic": ["warn", "WARN"],
    "profiler": ["simple", "Advanced", "pytorch", "passthrough", SimpleProfiler()],
    "plugins": [TorchCheckpointIO(), [LightningEnvironment()], [Precision(), TorchCheckpointIO()]],
    "default_root_dir": ["logs", Path("logs"), "a/b", " "],
    "auto_lr_find": ["lr", "learning_rate"],
    "auto_scale_batch_size": ["power", "binsearch", "Power"],
}

SMALL_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.floats(min_value=-1.5, max_value=1.5),
    st.text(max_size=3),
)
ANY_VALUE = st.one_of(
    SMALL_VALUES,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=4),
    st.lists(SMALL_VALUES, max_size=3),
    st.tuples(SMALL_VALUES),
    st.dictionaries(st.text(max_size=6), SMALL_VALUES, max_size=2),
    st.sampled_from([Opaque(), object, 1j, timedelta(seconds=1), timedelta(seconds=-1), math.nan]),
)


def values_for(name: str) -> st.SearchStrategy[Any]:
    hints = HINTS.get(name)
    return st.one_of(st.sampled_from(hints), ANY_VALUE) if hints else ANY_VALUE


def test_every_argument_has_bad_values_an_allowed_set_and_edge_values() -> None:
    names = set(trainer_arguments())
    assert len(names) == 43
    assert names - {name for name, _ in BAD_VALUES} == set()
    assert set(ALLOWED) == names
    assert names - {name for name, _, _ in EDGE_VALUES} == set()
    # The tables agree with each other: no bad value is allowed, every edge value is.
    assert [(n, v) for n, v in BAD_VALUES if ALLOWED[n](v)] == []
    assert [(n, v) for n, v, _ in EDGE_VALUES if not ALLOWED[n](v)] == []


@pytest.mark.parametrize("name", sorted(ALLOWED))
@settings(
    derandomize=True,
    database=None,  # derandomized: the same examples every run, nothing to remember
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_value_is_accepted_exactly_when_allowed_and_refused_clearly_otherwise(
    name: str, data: st.DataObject, fault_report: FaultReport
) -> None:
    value = data.draw(values_for(name), label=name)
    allowed = ALLOWED[name](value)
    try:
        trainer = build(name, value)
    except CLEAR_ERRORS as err:
        clear = shows(name, value, str(err))
        fault_report.record("bad Trainer argument (generated)", injections=1, recovered=int(clear))
        assert not allowed, f"Trainer({name}={value!r}) is allowed but was refused: {err}"
        assert clear, str(err)
    else:
        assert allowed, f"Trainer({name}={value!r}) was accepted but is not in the allowed set"
        assert isinstance(trainer.callbacks, list) and trainer.state.stage is None


# ------------------------------------------------------------------ accepted edge values run

# With the values of other arguments that an edge value needs to mean something.
EDGE_VALUES: list[tuple[str, Any, dict[str, Any]]] = [
    ("accelerator", "CPU", {}),
    ("strategy", "single_device", {}),
    ("devices", "1,", {}),
    ("num_nodes", 1, {}),
    ("precision", "bf16-mixed", {}),
    ("precision", 64, {}),
    ("logger", [CSVLogger("csv_logs")], {}),
    ("callbacks", (), {}),
    ("fast_dev_run", 3, {}),
    ("max_epochs", 0, {}),
    ("max_epochs", -1, {"max_steps": 6}),
    ("min_epochs", 3, {}),
    ("max_steps", 0, {}),
    ("min_steps", 6, {}),
    ("max_time", "00:00:00:00", {}),
    ("max_time", {"days": 10**5}, {}),
    ("limit_train_batches", 0, {}),
    ("limit_train_batches", 0.0, {}),
    ("limit_train_batches", 10**9, {}),
    ("limit_val_batches", 1.0, {}),
    ("limit_test_batches", 0, {}),
    ("limit_predict_batches", 0.5, {}),
    ("overfit_batches", 1, {}),
    ("overfit_batches", 1.0, {}),
    ("val_check_interval", 1, {}),
    ("val_check_interval", 1e-9, {}),
    ("val_check_interval", timedelta(seconds=30), {}),
    ("check_val_every_n_epoch", None, {}),
    ("num_sanity_val_steps", -1, {}),
    ("log_every_n_steps", 0, {}),
    ("enable_checkpointing", True, {"default_root_dir": "ckpts"}),
    ("enable_progress_bar", None, {}),
    ("enable_model_summary", True, {}),
    ("accumulate_grad_batches", 10**9, {}),
    ("gradient_clip_val", 0, {}),
    ("gradient_clip_val", math.inf, {}),
    ("gradient_clip_val", 1e300, {"gradient_clip_algorithm": "value"}),  # beyond float32
    ("gradient_clip_algorithm", "VALUE", {"gradient_clip_val": 0.5}),
    ("deterministic", "warn", {}),
    ("benchmark", True, {}),
    ("inference_mode", False, {}),
    ("use_distributed_sampler", False, {}),
    ("profiler", "simple", {}),
    ("detect_anomaly", True, {}),
    ("barebones", True, {}),
    ("plugins", [TorchCheckpointIO()], {}),
    ("sync_batchnorm", True, {}),
    ("reload_dataloaders_every_n_epochs", 10**9, {}),
    ("default_root_dir", "nested/folder", {}),
    ("enable_autolog_hparams", False, {}),
    ("model_registry", None, {}),
    ("auto_lr_find", "lr", {}),
    ("auto_scale_batch_size", "binsearch", {}),
]


@pytest.mark.parametrize(
    ("name", "value", "context"),
    EDGE_VALUES,
    ids=[case_id(name, value) for name, value, _ in EDGE_VALUES],
)
def test_an_accepted_edge_value_runs_fit_validate_and_predict(
    name: str, value: Any, context: dict[str, Any]
) -> None:
    options: dict[str, Any] = {
        "max_epochs": 2,
        "limit_train_batches": 3,
        "limit_val_batches": 2,
        "limit_test_batches": 2,
        "limit_predict_batches": 2,
    }
    if name in ("barebones", "fast_dev_run"):
        options = {"max_epochs": 1, "limit_train_batches": 2}
    options.update(context)
    with preserved_torch_flags():
        trainer = build(name, value, **options)
        trainer.fit(BoringModel())
        if trainer.limit_val_batches != 0:
            trainer.validate(BoringModel(), verbose=False)
        trainer.predict(BoringModel())
    assert trainer.state.stage is None and not trainer.interrupted
