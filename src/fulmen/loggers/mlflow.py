"""`MLFlowLogger`: metrics, hyperparameters and checkpoints to an MLflow tracking store.

`mlflow` (or `mlflow-skinny`) is imported only when the logger is built, so `import fulmen`
stays light.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import tempfile
import time
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from torch import Tensor

from fulmen.loggers.logger import Logger, rank_zero_experiment
from fulmen.loggers.utilities import add_prefix, convert_params, flatten_dict
from fulmen.loggers.wandb import _checkpoint_metadata, _scan_checkpoints
from fulmen.utilities.rank_zero import rank_zero_only, rank_zero_warn

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from fulmen.callbacks.model_checkpoint import ModelCheckpoint

__all__ = ["MLFlowLogger"]

log = logging.getLogger("fulmen")

LOCAL_FILE_URI_PREFIX = "file:"
# MLflow's limits for one `log_batch` call.
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
# What MLflow accepts in a metric name; anything else is dropped from the name.
_METRIC_NAME_UNSUPPORTED = re.compile(r"[^a-zA-Z0-9_/. -]+")
_RUN_STATUS = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED"}


def _param_value_limit() -> int:
    from mlflow.utils import validation

    # 250 was MLflow's limit before it was raised; older versions do not name the constant.
    return int(getattr(validation, "MAX_PARAM_VAL_LENGTH", 250))


class MLFlowLogger(Logger):
    """Log to an MLflow run in the experiment `experiment_name`, created on first use if needed.

    `name` is the experiment's id and `version` the run's id; with a local store
    (`file:` URI), checkpoints go to `<save_dir>/<experiment id>/<run id>/checkpoints`.

    Args:
        run_name: The new run's name (its `mlflow.runName` tag).
        tracking_uri: The tracking store or server; by default `$MLFLOW_TRACKING_URI` (read when
            fulmen is imported), else `file:<save_dir>`.
        tags: Tags for the new run.
        save_dir: The local folder of the file store when no `tracking_uri` is given.
        log_model: Upload `ModelCheckpoint` files as artifacts: `"all"` each time one is saved,
            True at the end of fitting (or each time for `save_top_k=-1`), False never.
        prefix: Written before every metric name, joined with `-`.
        artifact_location: Where a newly created experiment keeps its artifacts.
        run_id: An existing run to log into, instead of starting one.
        synchronous: Wait for each logging call to finish (True) or not (False); MLflow's
            default when None. Needs mlflow >= 2.8.

    Example:
        >>> import tempfile
        >>> os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # mlflow 3 keeps file stores behind it
        >>> logger = MLFlowLogger("demo", tracking_uri=f"file:{tempfile.mkdtemp()}")
        >>> logger.log_metrics({"loss": 0.5}, step=3)
        >>> [(m.step, m.value) for m in logger.experiment.get_metric_history(logger.version, "loss")]
        [(3, 0.5)]
        >>> logger.finalize("success")
        >>> logger.experiment.get_run(logger.version).info.status
        'FINISHED'
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        experiment_name: str = "lightning_logs",
        run_name: str | None = None,
        tracking_uri: str | None = os.getenv("MLFLOW_TRACKING_URI"),
        tags: dict[str, Any] | None = None,
        save_dir: str | None = "./mlruns",
        log_model: Literal[True, False, "all"] = False,
        prefix: str = "",
        artifact_location: str | None = None,
        run_id: str | None = None,
        synchronous: bool | None = None,
    ) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise ModuleNotFoundError(
                "MLFlowLogger needs the `mlflow` package, which is not installed. "
                "Run `pip install mlflow` (or the smaller `mlflow-skinny`), "
                "or `pip install fulmen[mlflow]`."
            )
        if log_model not in (True, False, "all"):
            raise ValueError(
                f"MLFlowLogger(log_model={log_model!r}) is invalid: expected True, False or 'all'."
            )
        import mlflow
        from mlflow.tracking import MlflowClient
        from packaging.version import Version

        if synchronous is not None and Version(mlflow.__version__) < Version("2.8.0"):
            raise ModuleNotFoundError(
                f"MLFlowLogger(synchronous={synchronous!r}) needs mlflow >= 2.8.0; "
                f"{mlflow.__version__} is installed. Run `pip install -U mlflow`."
            )
        if not tracking_uri:
            tracking_uri = f"{LOCAL_FILE_URI_PREFIX}{save_dir}"
        self._experiment_name = experiment_name
        self._experiment_id: str | None = None
        self._tracking_uri = tracking_uri
        self._run_name = run_name
        self._run_id = run_id
        self.tags = tags
        self._log_model = log_model
        self._logged_model_time: dict[str, float] = {}
        self._checkpoint_callback: ModelCheckpoint | None = None
        self._prefix = prefix
        self._artifact_location = artifact_location
        self._log_batch_kwargs = {} if synchronous is None else {"synchronous": synchronous}
        # With synchronous=False MLflow writes in a background thread; ending the run while a
        # write is still queued leaves a half-written metric file, so finalize waits for these.
        self._pending: list[Any] = []
        self._initialized = False
        # Built here so that a bad tracking URI (or a store MLflow refuses) fails at once.
        self._mlflow_client = MlflowClient(tracking_uri)

    @property
    @rank_zero_experiment
    def experiment(self) -> MlflowClient:
        """The `MlflowClient`; first use finds or creates the experiment and starts the run."""
        if self._initialized:
            return self._mlflow_client
        import mlflow

        mlflow.set_tracking_uri(self._tracking_uri)
        client = self._mlflow_client
        if self._run_id is not None:
            self._experiment_id = client.get_run(self._run_id).info.experiment_id
            self._initialized = True
            return client
        if self._experiment_id is None:
            found = client.get_experiment_by_name(self._experiment_name)
            if found is not None and found.lifecycle_stage != "deleted":
                self._experiment_id = found.experiment_id
            else:
                log.warning(f"Experiment with name {self._experiment_name} not found. Creating it.")
                self._experiment_id = client.create_experiment(
                    name=self._experiment_name, artifact_location=self._artifact_location
                )
        if self._run_name is not None:
            from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

            self.tags = dict(self.tags or {})
            if MLFLOW_RUN_NAME in self.tags:
                log.warning(
                    f"The tag {MLFLOW_RUN_NAME} is found in tags. "
                    f"The value will be overridden by {self._run_name}."
                )
            self.tags[MLFLOW_RUN_NAME] = self._run_name
        from mlflow.tracking.context.registry import resolve_tags

        # resolve_tags adds MLflow's own tags: the user, the source file, the git commit.
        run = client.create_run(experiment_id=self._experiment_id, tags=resolve_tags(self.tags))
        self._run_id = run.info.run_id
        self._initialized = True
        return client

    @property
    def run_id(self) -> str | None:
        """The run's id; asking for it starts the run."""
        _ = self.experiment
        return self._run_id

    @property
    def experiment_id(self) -> str | None:
        """The experiment's id; asking for it creates the experiment if needed."""
        _ = self.experiment
        return self._experiment_id

    @property
    def name(self) -> str | None:
        """The experiment's id."""
        return self.experiment_id

    @property
    def version(self) -> str | None:
        """The run's id."""
        return self.run_id

    @property
    def save_dir(self) -> str | None:
        """The local folder of the store for a `file:` tracking URI, else None."""
        if self._tracking_uri.startswith(LOCAL_FILE_URI_PREFIX):
            return self._tracking_uri[len(LOCAL_FILE_URI_PREFIX) :]
        return None

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace | None, *args: Any, **kwargs: Any
    ) -> None:
        """Log `params` as run parameters: nested keys joined by `/`, values as text.

        Values longer than MLflow accepts are cut to its limit, with a warning.
        """
        from mlflow.entities import Param

        limit = _param_value_limit()
        texts = {key: str(value) for key, value in flatten_dict(convert_params(params)).items()}
        cut = [key for key, text in texts.items() if len(text) > limit]
        if cut:
            rank_zero_warn(
                f"MLFlowLogger: the values of hyperparameters {cut} are longer than MLflow's "
                f"limit of {limit} characters and were cut to it."
            )
        entries = [Param(key=key, value=text[:limit]) for key, text in texts.items()]
        for start in range(0, len(entries), _PARAMS_PER_BATCH):
            self._track(
                self.experiment.log_batch(
                    run_id=self.run_id,
                    params=entries[start : start + _PARAMS_PER_BATCH],
                    **self._log_batch_kwargs,
                )
            )

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        """Log `metrics` at `step` (0 when None); names lose characters MLflow does not accept."""
        from mlflow.entities import Metric

        timestamp_ms = int(time.time() * 1000)
        entries = []
        for key, value in add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR).items():
            if isinstance(value, str):
                log.warning(f"Discarding metric with string value {key}={value}.")
                continue
            clean = _METRIC_NAME_UNSUPPORTED.sub("", key)
            if clean != key:
                rank_zero_warn(
                    "MLFlow only allows '_', '/', '.' and ' ' special characters in metric name."
                    f" Replacing {key} with {clean}.",
                    category=RuntimeWarning,
                )
            number = value.item() if isinstance(value, Tensor) else value
            entries.append(Metric(key=clean, value=number, timestamp=timestamp_ms, step=step or 0))
        for start in range(0, len(entries), _METRICS_PER_BATCH):
            self._track(
                self.experiment.log_batch(
                    run_id=self.run_id,
                    metrics=entries[start : start + _METRICS_PER_BATCH],
                    **self._log_batch_kwargs,
                )
            )

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Upload the checkpoints kept for the end and end the run with `status`.

        "success" and "finished" become MLflow's FINISHED, "failed" FAILED; other values
        (such as "KILLED") are passed on as they are.
        """
        if not self._initialized:
            return
        if self._checkpoint_callback is not None:
            self._log_checkpoints(self._checkpoint_callback)
        for operation in self._pending:
            operation.wait()
        self._pending.clear()
        if self.experiment.get_run(self.run_id):
            self.experiment.set_terminated(self.run_id, _RUN_STATUS.get(status, status))

    def _track(self, operation: Any) -> None:
        # `log_batch` returns an operation to wait on only when it runs in the background.
        if operation is not None and hasattr(operation, "wait"):
            self._pending.append(operation)

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Upload the new checkpoint now (`log_model="all"`) or remember to at the end (True)."""
        if self._log_model == "all" or (
            self._log_model is True and checkpoint_callback.save_top_k == -1
        ):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callback = checkpoint_callback

    def _log_checkpoints(self, checkpoint_callback: ModelCheckpoint) -> None:
        import yaml

        for mtime, path, score in _scan_checkpoints(checkpoint_callback, self._logged_model_time):
            # Each checkpoint gets a folder named after it, with its metadata and aliases beside it.
            folder = os.path.splitext(os.path.basename(path))[0]
            is_best = path == checkpoint_callback.best_model_path
            self.experiment.log_artifact(self.run_id, path, folder)
            with tempfile.TemporaryDirectory() as tmp_dir:
                metadata = _checkpoint_metadata(checkpoint_callback, path, score, "Checkpoint")
                with open(os.path.join(tmp_dir, "metadata.yaml"), "w", encoding="utf-8") as file:
                    yaml.dump(metadata, file, default_flow_style=False)
                with open(os.path.join(tmp_dir, "aliases.txt"), "w", encoding="utf-8") as file:
                    file.write(str(["latest", "best"] if is_best else ["latest"]))
                self.experiment.log_artifacts(self.run_id, tmp_dir, folder)
            self._logged_model_time[path] = mtime
