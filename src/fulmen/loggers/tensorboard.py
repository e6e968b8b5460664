"""`TensorBoardLogger`: scalars, hyperparameters and the model graph as TensorBoard event files."""

from __future__ import annotations

import importlib.util
import os
import warnings
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch.nn as nn
from torch import Tensor

from fulmen.loggers.logger import Logger, rank_zero_experiment
from fulmen.loggers.utilities import (
    add_prefix,
    convert_params,
    flatten_dict,
    next_version,
    save_hparams_to_yaml,
    version_dir_name,
)
from fulmen.utilities.apply_func import move_data_to_device
from fulmen.utilities.rank_zero import rank_zero_only, rank_zero_warn

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["TensorBoardLogger", "tensorboard_available"]


def tensorboard_available() -> bool:
    """Return whether the `tensorboard` package is installed, without importing it.

    Example:
        >>> isinstance(tensorboard_available(), bool)
        True
    """
    return importlib.util.find_spec("tensorboard") is not None


def _hparam_value(value: Any) -> bool | int | float | str:
    # The hparams tab shows numbers, strings and booleans; anything else is shown as its repr text.
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class TensorBoardLogger(Logger):
    """Log to TensorBoard event files in `<save_dir>/<name>/version_<N>[/<sub_dir>]`.

    Args:
        log_graph: Add the model's graph (traced from `example_input_array`) in `log_graph()`.
        default_hp_metric: Write `hp_metric = -1` with the hyperparameters, so that the hparams
            tab has a metric to show; log `hp_metric` yourself to fill it in.
        prefix: Written before every metric name, joined with `-`.
        sub_dir: A folder below the version folder, for instance to separate train and eval runs.
        kwargs: Passed on to `torch.utils.tensorboard.SummaryWriter`.

    Example:
        >>> import tempfile
        >>> logger = TensorBoardLogger(tempfile.mkdtemp(), name="demo")
        >>> logger.log_metrics({"loss": 0.25}, step=0)
        >>> logger.finalize("success")
        >>> sorted(name.split(".")[0] for name in os.listdir(logger.log_dir))
        ['events', 'hparams']
    """

    LOGGER_JOIN_CHAR = "-"
    NAME_HPARAMS_FILE = "hparams.yaml"

    def __init__(
        self,
        save_dir: str | Path,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        if not tensorboard_available():
            raise ModuleNotFoundError(
                "TensorBoardLogger needs the `tensorboard` package, which is not installed. "
                "Run `pip install tensorboard`, or use `CSVLogger` instead."
            )
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._log_graph = log_graph
        self._default_hp_metric = default_hp_metric
        self._prefix = prefix
        self._sub_dir = os.fspath(sub_dir) if sub_dir is not None else None
        self._kwargs = kwargs
        self._experiment: SummaryWriter | None = None
        self._hparams_changed = False
        self.hparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        """The folder below `save_dir` that holds every version; empty for none."""
        return self._name

    @property
    def version(self) -> int | str:
        """The run's version; the next free `version_<N>` number unless one was given."""
        if self._version is None:
            self._version = next_version(self.root_dir)
        return self._version

    @property
    def save_dir(self) -> str:
        """The folder given as `save_dir`."""
        return self._save_dir

    @property
    def root_dir(self) -> str:
        """`<save_dir>/<name>`: the folder that holds every version."""
        return os.path.join(self._save_dir, self._name)

    @property
    def sub_dir(self) -> str | None:
        """The folder below the version folder, if one was given."""
        return self._sub_dir

    @property
    def log_dir(self) -> str:
        """`<save_dir>/<name>/version_<N>[/<sub_dir>]`, with `~` and `$VARS` expanded."""
        log_dir = os.path.join(self.root_dir, version_dir_name(self.version))
        if self._sub_dir is not None:
            log_dir = os.path.join(log_dir, self._sub_dir)
        return os.path.expanduser(os.path.expandvars(log_dir))

    @property
    @rank_zero_experiment
    def experiment(self) -> SummaryWriter:
        """The `SummaryWriter`; creating it creates `log_dir`."""
        if self._experiment is None:
            from torch.utils.tensorboard import SummaryWriter

            self._experiment = SummaryWriter(log_dir=self.log_dir, **self._kwargs)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        """Add each metric as a scalar at `step`; a dict value becomes a group of scalars."""
        experiment = self.experiment
        for name, value in add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR).items():
            if isinstance(value, Mapping):
                experiment.add_scalars(name, value, step)
                continue
            try:
                experiment.add_scalar(
                    name, value.item() if isinstance(value, Tensor) else value, step
                )
            except Exception as error:
                raise ValueError(
                    f"TensorBoardLogger cannot log metric {name!r} = {value!r}: expected a number, "
                    "a one-element tensor or a dict of numbers."
                ) from error

    @rank_zero_only
    def log_hyperparams(
        self,
        params: dict[str, Any] | Namespace | None,
        metrics: Mapping[str, float | Tensor] | float | None = None,
        step: int | None = None,
    ) -> None:
        """Record `params` for `hparams.yaml` and the hparams tab, with `metrics` as its columns.

        `metrics` are also logged as scalars at `step` (default 0). Without `metrics`, `hp_metric`
        is written as -1 (unless `default_hp_metric=False`); a single number stands for
        `{"hp_metric": number}`.
        """
        params = convert_params(params)
        self.hparams.update(params)
        self._hparams_changed = True
        if metrics is None:
            if not self._default_hp_metric:
                return
            metrics = {"hp_metric": -1}
        elif not isinstance(metrics, Mapping):
            metrics = {"hp_metric": metrics}
        if not metrics:
            return
        self.log_metrics(metrics, 0 if step is None else step)

        from torch.utils.tensorboard.summary import hparams

        flat = {name: _hparam_value(value) for name, value in flatten_dict(params).items()}
        # The tab links its metric columns to scalar tags, so the names must carry the prefix too.
        tags = add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        writer = self.experiment._get_file_writer()
        for summary in hparams(flat, dict(tags)):  # type: ignore[no-untyped-call]
            writer.add_summary(summary)

    @rank_zero_only
    def log_graph(self, model: nn.Module, input_array: Any = None) -> None:
        """Trace `model` on `input_array` (default: `model.example_input_array`) into the graph tab.

        Does nothing unless the logger was built with `log_graph=True`.
        """
        if not self._log_graph:
            return
        if input_array is None:
            input_array = getattr(model, "example_input_array", None)
        if input_array is None:
            rank_zero_warn(
                "TensorBoardLogger(log_graph=True) could not log the graph: set "
                f"`{type(model).__name__}.example_input_array` or pass `input_array`."
            )
            return
        device = next((p.device for p in model.parameters()), None)
        if device is not None:
            input_array = move_data_to_device(input_array, device)
        with warnings.catch_warnings():
            # `add_graph` is built on `torch.jit.trace`, which torch deprecates; nothing the user
            # can change, so the warning would only be noise.
            warnings.filterwarnings(
                "ignore", message=".*torch.jit.trace.*", category=DeprecationWarning
            )
            self.experiment.add_graph(model, input_array)

    @rank_zero_only
    def save(self) -> None:
        """Flush the event file and write `hparams.yaml` next to it."""
        if self._experiment is not None:
            self._experiment.flush()
        hparams_file = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        if os.path.isdir(self.log_dir) and (
            self._hparams_changed or not os.path.isfile(hparams_file)
        ):
            save_hparams_to_yaml(hparams_file, self.hparams)
            self._hparams_changed = False

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Write `hparams.yaml` and close the event file (logging again later opens a new one)."""
        self.save()
        if self._experiment is not None:
            self._experiment.close()

    def __getstate__(self) -> dict[str, Any]:
        # A SummaryWriter holds threads and open files; a copy (e.g. for spawned workers) makes
        # its own on first use.
        state = self.__dict__.copy()
        state["_experiment"] = None
        return state
