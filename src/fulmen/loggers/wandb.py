"""`WandbLogger`: metrics, hyperparameters, media and checkpoints to a Weights & Biases run.

`wandb` is imported only when the logger is built and used, so `import fulmen` stays light.
"""

from __future__ import annotations

import importlib.util
import json
import os
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch.nn as nn
from torch import Tensor

from fulmen.loggers.logger import Logger, rank_zero_experiment
from fulmen.loggers.utilities import add_prefix, convert_params
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_only, rank_zero_warn

if TYPE_CHECKING:
    from fulmen.callbacks.model_checkpoint import ModelCheckpoint

__all__ = ["WandbLogger"]

# The settings of a ModelCheckpoint recorded with each uploaded checkpoint (Lightning's list).
_CHECKPOINT_SETTINGS = (
    "monitor",
    "mode",
    "save_last",
    "save_top_k",
    "save_weights_only",
    "_every_n_train_steps",
)


def _scan_checkpoints(
    checkpoint_callback: ModelCheckpoint, logged_time: Mapping[str, float]
) -> list[tuple[float, str, Any]]:
    """Return `(mtime, path, score)` for each checkpoint file not uploaded since it last changed.

    Looks at the last, best and top-k checkpoints of `checkpoint_callback`, oldest file first.
    """
    scores: dict[str, Any] = {}
    if checkpoint_callback.last_model_path:
        scores[checkpoint_callback.last_model_path] = checkpoint_callback.current_score
    if checkpoint_callback.best_model_path:
        scores[checkpoint_callback.best_model_path] = checkpoint_callback.best_model_score
    scores.update(checkpoint_callback.best_k_models)
    found = sorted(
        (os.path.getmtime(path), path, score)
        for path, score in scores.items()
        if os.path.isfile(path)
    )
    return [entry for entry in found if logged_time.get(entry[1], -1.0) < entry[0]]


def _checkpoint_metadata(
    checkpoint_callback: ModelCheckpoint, path: str, score: Any, section: str
) -> dict[str, Any]:
    """Return the metadata uploaded with a checkpoint; its settings go under the key `section`."""
    settings = {
        key: getattr(checkpoint_callback, key)
        for key in _CHECKPOINT_SETTINGS
        if hasattr(checkpoint_callback, key)
    }
    return {
        "score": score.item() if isinstance(score, Tensor) else score,
        "original_filename": Path(path).name,
        section: settings,
    }


def _config_value(value: Any) -> Any:
    # A W&B config holds JSON: nested dicts stay nested, callables are shown by name and
    # anything else JSON cannot hold by its text.
    if isinstance(value, Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(key): _config_value(inner) for key, inner in value.items()}
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    if callable(value) and not isinstance(value, nn.Module):
        return getattr(value, "__name__", None) or str(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _check_media(kind: str, items: Any, kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Check `items` is a list and each of `kwargs` has one entry per item; return per-item kwargs."""
    if not isinstance(items, list):
        raise TypeError(f"Expected a list as {kind!r}, got {type(items).__name__}.")
    for name, values in kwargs.items():
        if len(values) != len(items):
            raise ValueError(
                f"Expected {len(items)} items for {name!r}, one per entry of {kind!r}; "
                f"got {len(values)}."
            )
    return [{name: values[i] for name, values in kwargs.items()} for i in range(len(items))]


class WandbLogger(Logger):
    """Log to a Weights & Biases run, started on first use with `wandb.init` (or the open one).

    Metrics are logged with a `trainer/global_step` entry, the x-axis of every chart, since W&B's
    own step must only grow. Hyperparameters go to the run's config.

    Args:
        name: The run's display name.
        save_dir: Where W&B writes its `wandb/` folder; `dir` is used only when this is None.
        version, id: The run id, to resume a run (`version` wins when both are given).
        offline: Write the run locally only; `wandb sync` uploads it later.
        anonymous: Let users without a W&B account log (ignored by recent `wandb`).
        project: The W&B project; `$WANDB_PROJECT` or `"lightning_logs"` when not given.
        log_model: Upload `ModelCheckpoint` files as `model` artifacts: `"all"` each time one is
            saved, True at the end of fitting (or each time for `save_top_k=-1`), False never.
        experiment: A W&B run to use instead of starting one.
        prefix: Written before every metric name, joined with `-`.
        checkpoint_name: The artifact name for checkpoints; `model-<run id>` when not given.
        add_file_policy: `"immutable"` copies each checkpoint into W&B's staging folder before
            uploading, so that later changes to the file do not reach the upload.
        kwargs: Passed on to `wandb.init` (for instance `entity`, `group`, `tags`, `mode`).

    Example:
        >>> logger = WandbLogger(project="demo", offline=True)
        >>> logger.name, logger.save_dir
        ('demo', '.')
        >>> # Trainer(logger=logger).fit(model) starts the run; logger.experiment is `wandb.run`.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | Path | None = ".",
        version: str | None = None,
        offline: bool = False,
        dir: str | Path | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: Literal["all"] | bool = False,
        experiment: Any = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        add_file_policy: Literal["mutable", "immutable"] = "mutable",
        **kwargs: Any,
    ) -> None:
        if importlib.util.find_spec("wandb") is None:
            raise ModuleNotFoundError(
                "WandbLogger needs the `wandb` package, which is not installed. "
                "Run `pip install wandb` (or `pip install fulmen[wandb]`)."
            )
        if log_model not in (True, False, "all"):
            raise ValueError(
                f"WandbLogger(log_model={log_model!r}) is invalid: expected True, False or 'all'."
            )
        if add_file_policy not in ("mutable", "immutable"):
            raise ValueError(
                f"WandbLogger(add_file_policy={add_file_policy!r}) is invalid: expected "
                "'mutable' or 'immutable'."
            )
        if offline and log_model:
            raise MisconfigurationException(
                f"WandbLogger(log_model={log_model!r}, offline=True) is invalid: checkpoints cannot "
                "be uploaded from an offline run. Set `offline=False` or `log_model=False`."
            )
        self._offline = offline
        self._log_model = log_model
        self._prefix = prefix
        self._experiment = experiment
        self._checkpoint_name = checkpoint_name
        self.add_file_policy = add_file_policy
        self._logged_model_time: dict[str, float] = {}
        self._checkpoint_callbacks: dict[int, ModelCheckpoint] = {}
        self._attach_id: str | None = None

        directory = save_dir if save_dir is not None else dir
        self._save_dir = os.fspath(directory) if directory is not None else None
        self._project = project or os.environ.get("WANDB_PROJECT", "lightning_logs")
        self._name = name
        self._id = version or id
        self._wandb_init: dict[str, Any] = {
            "name": name,
            "project": self._project,
            "dir": self._save_dir,
            "id": self._id,
            "resume": "allow",
        }
        # Recent `wandb` warns whenever `anonymous` is passed at all, so it is passed only when set.
        if anonymous:
            self._wandb_init["anonymous"] = "allow"
        if offline:
            self._wandb_init["mode"] = "offline"
        self._wandb_init.update(kwargs)

    @property
    def name(self) -> str | None:
        """The W&B project."""
        return self._project

    @property
    def version(self) -> str | None:
        """The run id: the started run's, else the one given as `version` or `id`."""
        return self._experiment.id if self._experiment is not None else self._id

    @property
    def save_dir(self) -> str | None:
        """The folder W&B writes its files into."""
        return self._save_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The W&B run: the one given, the open `wandb.run`, or a new one from `wandb.init`."""
        if self._experiment is not None:
            return self._experiment
        import wandb

        if wandb.run is not None:
            rank_zero_warn(
                "There is a wandb run already in progress and newly created instances of "
                "`WandbLogger` will reuse this run. If this is not desired, call `wandb.finish()` "
                "before instantiating `WandbLogger`."
            )
            self._experiment = wandb.run
        elif self._attach_id is not None and hasattr(wandb, "_attach"):
            # A copy sent to another process (see __getstate__) rejoins the parent's run.
            self._experiment = wandb._attach(self._attach_id)
        else:
            if self._save_dir is not None:
                os.makedirs(self._save_dir, exist_ok=True)
            run = wandb.init(**self._wandb_init)
            if self._wandb_init.get("sync_tensorboard"):
                run.define_metric("*", step_metric="global_step")
            else:
                run.define_metric("trainer/global_step")
                run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
            self._experiment = run
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log `metrics` to the run, with `trainer/global_step = step` when `step` is given."""
        values = {
            name: value.item() if isinstance(value, Tensor) and value.numel() == 1 else value
            for name, value in add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR).items()
        }
        if step is not None and not self._wandb_init.get("sync_tensorboard"):
            values["trainer/global_step"] = step
        self.experiment.log(values)

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace | None, *args: Any, **kwargs: Any
    ) -> None:
        """Add `params` to the run's config (callables by name, other non-JSON values as text)."""
        config = _config_value(convert_params(params))
        self.experiment.config.update(config, allow_val_change=True)

    def watch(
        self,
        model: nn.Module,
        log: str | None = "gradients",
        log_freq: int = 100,
        log_graph: bool = True,
    ) -> None:
        """Log `model`'s gradients and/or parameters (`log`) every `log_freq` steps."""
        self.experiment.watch(model, log=log, log_freq=log_freq, log_graph=log_graph)

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Log a `wandb.Table` built from `columns` and `data` rows, or from a pandas `dataframe`."""
        import wandb

        # W&B also takes int column names; its annotation says so, hence the wider type here.
        names: list[Any] | None = columns
        self.log_metrics({key: wandb.Table(columns=names, data=data, dataframe=dataframe)}, step)

    @rank_zero_only
    def log_text(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[str]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Log text as a table (W&B shows text in tables)."""
        self.log_table(key, columns, data, dataframe, step)

    @rank_zero_only
    def log_image(
        self, key: str, images: list[Any], step: int | None = None, **kwargs: Any
    ) -> None:
        """Log `images` (arrays, tensors, PIL images or paths) under `key`.

        Each keyword (for instance `caption=[...]`) holds one value per image.
        """
        per_image = _check_media("images", images, kwargs)
        import wandb

        media = [wandb.Image(image, **extra) for image, extra in zip(images, per_image)]
        self.log_metrics({key: media}, step)

    @rank_zero_only
    def log_audio(
        self, key: str, audios: list[Any], step: int | None = None, **kwargs: Any
    ) -> None:
        """Log `audios` (arrays with `sample_rate=[...]`, or paths) under `key`."""
        per_audio = _check_media("audios", audios, kwargs)
        import wandb

        media = [wandb.Audio(audio, **extra) for audio, extra in zip(audios, per_audio)]
        self.log_metrics({key: media}, step)

    @rank_zero_only
    def log_video(
        self, key: str, videos: list[Any], step: int | None = None, **kwargs: Any
    ) -> None:
        """Log `videos` (arrays shaped time, channel, height, width, or paths) under `key`."""
        per_video = _check_media("videos", videos, kwargs)
        import wandb

        media = [wandb.Video(video, **extra) for video, extra in zip(videos, per_video)]
        self.log_metrics({key: media}, step)

    def use_artifact(self, artifact: str, artifact_type: str | None = None) -> Any:
        """Declare that this run uses `artifact` (`"entity/project/name:alias"`) and return it."""
        return self.experiment.use_artifact(artifact, type=artifact_type)

    @staticmethod
    @rank_zero_only
    def download_artifact(
        artifact: str,
        save_dir: str | Path | None = None,
        artifact_type: str | None = None,
        use_artifact: bool | None = True,
    ) -> str:
        """Download `artifact` into `save_dir` and return the folder it is in.

        Inside a run (and with `use_artifact`), the run records that it used the artifact.
        """
        import wandb

        if wandb.run is not None and use_artifact:
            found = wandb.run.use_artifact(artifact)
        else:
            found = wandb.Api().artifact(artifact, type=artifact_type)
        root = os.fspath(save_dir) if save_dir is not None else None
        return str(found.download(root=root))

    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Upload the new checkpoint now (`log_model="all"`) or remember to at the end (True)."""
        if self._log_model == "all" or (
            self._log_model is True and checkpoint_callback.save_top_k == -1
        ):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """After a successful fit, upload the checkpoints kept for the end (`log_model=True`).

        The run itself stays open, so that testing after fitting logs into it; `wandb.finish()`
        closes it.
        """
        if status != "success" or self._experiment is None:
            return
        for checkpoint_callback in self._checkpoint_callbacks.values():
            self._log_checkpoints(checkpoint_callback)

    def _log_checkpoints(self, checkpoint_callback: ModelCheckpoint) -> None:
        import wandb

        for mtime, path, score in _scan_checkpoints(checkpoint_callback, self._logged_model_time):
            if not self._checkpoint_name:
                self._checkpoint_name = f"model-{self.experiment.id}"
            artifact = wandb.Artifact(
                name=self._checkpoint_name,
                type="model",
                metadata=_checkpoint_metadata(
                    checkpoint_callback, path, score, type(checkpoint_callback).__name__
                ),
            )
            artifact.add_file(path, name="model.ckpt", policy=self.add_file_policy)
            is_best = path == checkpoint_callback.best_model_path
            self.experiment.log_artifact(
                artifact, aliases=["latest", "best"] if is_best else ["latest"]
            )
            self._logged_model_time[path] = mtime

    def __getstate__(self) -> dict[str, Any]:
        # A run cannot be pickled. Copies sent to spawned workers carry the run's id and the
        # service handle to rejoin it, and start the run here first so that there is one to join.
        state = self.__dict__.copy()
        if rank_zero_only.rank == 0:  # type: ignore[attr-defined]
            run = self.experiment
            state["_id"] = getattr(run, "id", None)
            state["_attach_id"] = getattr(run, "_attach_id", None)
            state["_name"] = getattr(run, "name", self._name)
        state["_experiment"] = None
        return state
