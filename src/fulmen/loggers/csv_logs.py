"""`CSVLogger`: metrics to `metrics.csv` and hyperparameters to `hparams.yaml`, no dependencies."""

from __future__ import annotations

import csv
import io
import os
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from fulmen.loggers.logger import Logger, rank_zero_experiment
from fulmen.loggers.utilities import (
    add_prefix,
    append_to_file,
    convert_params,
    next_version,
    replace_file,
    save_hparams_to_yaml,
    version_dir_name,
)
from fulmen.utilities.rank_zero import rank_zero_only

__all__ = ["CSVLogger"]


def _to_cell(value: Any) -> Any:
    # Called only when rows are written, so logging a GPU tensor does not wait for the device.
    return value.item() if isinstance(value, Tensor) else value


def _csv_text(columns: list[str], rows: list[dict[str, Any]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class _ExperimentWriter:
    """Buffer rows and write them to `metrics.csv`, widening the header when new names appear."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, CSVLogger.NAME_METRICS_FILE)
        self.hparams: dict[str, Any] = {}
        self.metrics: list[dict[str, Any]] = []
        self.rows_logged = 0
        self._hparams_changed = False
        self._columns: list[str] = []
        self._has_file = False
        os.makedirs(log_dir, exist_ok=True)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Buffer one row: `metrics` plus the `step` column."""
        self.metrics.append({**metrics, "step": step})
        self.rows_logged += 1

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        """Add `params` to the hyperparameters written by `save`."""
        if params:
            self.hparams.update(params)
            self._hparams_changed = True

    def save(self) -> None:
        """Write `hparams.yaml` (if hyperparameters changed) and the buffered rows."""
        if self._hparams_changed:
            save_hparams_to_yaml(
                os.path.join(self.log_dir, CSVLogger.NAME_HPARAMS_FILE), self.hparams
            )
            self._hparams_changed = False
        if not self.metrics:
            return
        rows = [{name: _to_cell(value) for name, value in row.items()} for row in self.metrics]
        names = {name for row in rows for name in row}
        if self._has_file and names.issubset(self._columns):
            append_to_file(self.metrics_file_path, _csv_text(self._columns, rows, header=False))
        else:
            # A new column means a new header, so the rows already on disk are written again,
            # into a new file that replaces the old one: a crash cannot lose the earlier rows.
            if self._has_file:
                with open(self.metrics_file_path, newline="", encoding="utf-8") as file:
                    rows = list(csv.DictReader(file)) + rows
            self._columns = sorted(names.union(self._columns))
            replace_file(self.metrics_file_path, _csv_text(self._columns, rows, header=True))
            self._has_file = True
        self.metrics = []


class CSVLogger(Logger):
    """Log metrics to `<save_dir>/<name>/version_<N>/metrics.csv` and hyperparameters to YAML.

    Columns are the metric names in alphabetical order (with `epoch` and `step` among them); each
    `log_metrics` call is one row, empty where a metric was not logged. Rows are buffered and
    written every `flush_logs_every_n_steps` steps and on `save()`/`finalize()`.

    Example:
        >>> import tempfile
        >>> logger = CSVLogger(tempfile.mkdtemp())
        >>> logger.log_metrics({"loss": 0.5, "epoch": 0}, step=0)
        >>> logger.save()
        >>> print(Path(logger.log_dir, "metrics.csv").read_text().strip())
        epoch,loss,step
        0,0.5,0
    """

    LOGGER_JOIN_CHAR = "-"
    NAME_HPARAMS_FILE = "hparams.yaml"
    NAME_METRICS_FILE = "metrics.csv"

    def __init__(
        self,
        save_dir: str | Path,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        if not isinstance(flush_logs_every_n_steps, int) or flush_logs_every_n_steps < 1:
            raise ValueError(
                f"CSVLogger(flush_logs_every_n_steps={flush_logs_every_n_steps!r}) is invalid: "
                "expected an int >= 1."
            )
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._prefix = prefix
        self._flush_logs_every_n_steps = flush_logs_every_n_steps
        self._experiment: _ExperimentWriter | None = None

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
    def log_dir(self) -> str:
        """`<save_dir>/<name>/version_<N>`: where this run's files go."""
        return os.path.join(self.root_dir, version_dir_name(self.version))

    @property
    @rank_zero_experiment
    def experiment(self) -> _ExperimentWriter:
        """The writer that owns `metrics.csv`; creating it creates `log_dir`."""
        if self._experiment is None:
            self._experiment = _ExperimentWriter(self.log_dir)
        return self._experiment

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace | None, *args: Any, **kwargs: Any
    ) -> None:
        """Record `params`; they are written to `hparams.yaml` on the next `save()`."""
        self.experiment.log_hparams(convert_params(params))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        """Buffer one row of `metrics` at `step` (by default, the number of rows logged so far)."""
        experiment = self.experiment
        if step is None:
            step = experiment.rows_logged
        experiment.log_metrics(add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR), step)
        if (step + 1) % self._flush_logs_every_n_steps == 0:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        """Write the buffered rows and the hyperparameters."""
        if self._experiment is not None:
            self._experiment.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Write everything that is still buffered."""
        self.save()
