"""`ModelCheckpoint`: save the model on a step, time or epoch trigger and keep the best k files.

When each file is written (Lightning 2.6's policy, which fulmen keeps for compatibility):

================================  ==========================================================
trigger                           what is written
================================  ==========================================================
`every_n_train_steps` reached     top-k file and `last`, in `on_train_batch_end`; if the
or `train_time_interval` passed   monitored metric is not logged yet, or validation is about
                                  to run after this batch, both wait for `on_validation_end`
end of every `every_n_epochs`-th  top-k file, in `on_train_epoch_end` when
epoch                             `save_on_train_epoch_end` resolves True, else in
                                  `on_validation_end`
same hooks, after the above       `last`, but only if a file was saved at this very
                                  `global_step` (or `save_last="link"` and one ever was)
`on_train_end`                    `last`, if `save_last` is set and nothing was ever saved
                                  (not under `fast_dev_run`, unlike Lightning 2.6)
exception (`save_on_exception`)   a top-k-named file and `last`
================================  ==========================================================

Nothing is saved while sanity checking, under `fast_dev_run`, outside `fit`, or twice at the
same `global_step`. Files are written through `trainer.save_checkpoint` (all ranks call it, the
strategy decides who writes); this module only removes, links and lists files, on rank zero.

A run killed mid-fit can leave its folder out of step with what it promises. So before the
first save of a fit, rank zero removes the temporary files and folders of interrupted saves and
removals (`<name>.ckpt.<8 hex digits>.tmp` / `.deleting`, nothing else). And when fit resumes
from a state saved for the same folder, files the state lists that are gone (the killed run
replaced them) are forgotten, and files this callback wrote that the state does not list (written
after it, or not yet removed when the run was killed) are deleted: a file counts as this
callback's only if its own saved state names the same `state_key` and `dirpath`. At the end the
folder holds exactly the `save_top_k` best files and `last`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from weakref import proxy

import torch
from torch import Tensor

from fulmen.callbacks import checkpoint_folder
from fulmen.callbacks.checkpoint import Checkpoint
from fulmen.callbacks.checkpoint_folder import TEMPLATE_FIELD, filesystem, is_local
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info, rank_zero_warn
from fulmen.utilities.types import STEP_OUTPUT

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["ModelCheckpoint"]

log = logging.getLogger(__name__)

_PATH = str | os.PathLike[str]


class ModelCheckpoint(Checkpoint):
    """Save the model periodically, keeping the `save_top_k` best files by `monitor`.

    Args:
        dirpath: Directory for the files. Default: `<save_dir>/<name>/<version>/checkpoints` of the
            first logger, else `<default_root_dir>/checkpoints`.
        filename: Template such as `"{epoch}-{val_loss:.2f}"`; fields come from
            `trainer.callback_metrics` plus `epoch` and `step`. Default `"{epoch}-{step}"`.
        monitor: Metric that ranks the files. None keeps only the latest file (or all of them
            with `save_top_k=-1`).
        save_last: True also writes `last.ckpt`; `"link"` makes it a symlink to the newest file.
        save_top_k: How many files to keep: -1 all, 0 none, k the best k.
        save_on_exception: Also save when fit is ended by an exception.
        auto_insert_metric_name: Render `{epoch}` as `epoch=3` rather than `3`.
        every_n_train_steps: Save every N optimizer steps.
        train_time_interval: Save after at least this much training time has passed.
        every_n_epochs: Save every N epochs (the default, 1, when no trigger is given).
        save_on_train_epoch_end: Save at the end of the training epoch rather than after
            validation. None decides from the trainer: True when validation does not run, or
            runs exactly once at the end of every epoch.
        enable_version_counter: Add `-v1`, `-v2`... instead of overwriting an existing file.

    Example:
        >>> ckpt = ModelCheckpoint(dirpath="ckpts", filename="{epoch}-{val_loss:.2f}")
        >>> os.path.basename(ckpt.format_checkpoint_name({"epoch": 2, "val_loss": 0.1234}))
        'epoch=2-val_loss=0.12.ckpt'
        >>> ModelCheckpoint().state_key
        "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, 'train_time_interval': None}"
    """

    CHECKPOINT_JOIN_CHAR = "-"
    CHECKPOINT_EQUALS_CHAR = "="
    CHECKPOINT_NAME_LAST = "last"
    FILE_EXTENSION = ".ckpt"
    STARTING_VERSION = 1

    def __init__(
        self,
        dirpath: _PATH | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | Literal["link"] | None = None,
        save_top_k: int = 1,
        save_on_exception: bool = False,
        save_weights_only: bool = False,
        mode: str = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        enable_version_counter: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise MisconfigurationException(
                f"ModelCheckpoint(mode={mode!r}) is invalid: expected 'min' or 'max'."
            )
        if save_last not in (None, True, False, "link"):
            raise MisconfigurationException(
                f"ModelCheckpoint(save_last={save_last!r}) is invalid: expected None, True, False "
                "or 'link'."
            )
        if save_top_k < -1:
            raise MisconfigurationException(
                f"ModelCheckpoint(save_top_k={save_top_k!r}) is invalid: expected an int >= -1 "
                "(-1 keeps every file, 0 saves none)."
            )
        if monitor is None and save_top_k not in (-1, 0, 1):
            raise MisconfigurationException(
                f"ModelCheckpoint(save_top_k={save_top_k!r}, monitor=None) is invalid: without a "
                "`monitor` there is nothing to rank the files by. Set `monitor`, or use "
                "save_top_k=-1 (keep all), 0 (none) or 1 (latest)."
            )
        for name, value in (
            ("every_n_train_steps", every_n_train_steps),
            ("every_n_epochs", every_n_epochs),
        ):
            if value is not None and value < 0:
                raise MisconfigurationException(
                    f"ModelCheckpoint({name}={value!r}) is invalid: expected an int >= 0."
                )
        active = {
            name: value
            for name, value, is_set in (
                ("every_n_train_steps", every_n_train_steps, (every_n_train_steps or 0) >= 1),
                ("every_n_epochs", every_n_epochs, (every_n_epochs or 0) >= 1),
                ("train_time_interval", train_time_interval, train_time_interval is not None),
            )
            if is_set
        }
        if len(active) > 1:
            given = ", ".join(f"{name}={value!r}" for name, value in active.items())
            raise MisconfigurationException(
                f"ModelCheckpoint({given}) is invalid: `every_n_train_steps`, `every_n_epochs` and "
                "`train_time_interval` are mutually exclusive; set only one."
            )
        if every_n_train_steps is None and every_n_epochs is None and train_time_interval is None:
            every_n_epochs = 1

        self.monitor = monitor
        self.verbose = verbose
        self.save_last = save_last
        self.save_top_k = save_top_k
        self.save_on_exception = save_on_exception
        self.save_weights_only = save_weights_only
        self.mode = mode
        self.auto_insert_metric_name = auto_insert_metric_name
        self.filename = filename
        self.dirpath: str | None = None
        if dirpath is not None:
            self.dirpath = os.fspath(dirpath)
            if "://" not in self.dirpath:
                self.dirpath = os.path.realpath(os.path.expanduser(self.dirpath))
        self._every_n_train_steps: int = every_n_train_steps or 0
        self._every_n_epochs: int = every_n_epochs or 0
        self._train_time_interval = train_time_interval
        self._save_on_train_epoch_end = save_on_train_epoch_end
        self._enable_version_counter = enable_version_counter

        self.current_score: Tensor | None = None
        self.best_k_models: dict[str, Tensor] = {}
        self.kth_best_model_path = ""
        self.kth_value: Tensor = torch.tensor(float("inf") if mode == "min" else float("-inf"))
        self.best_model_score: Tensor | None = None
        self.best_model_path = ""
        self.last_model_path = ""

        # Starts at 0 so that a fit that takes no step saves nothing.
        self._last_global_step_saved = 0
        self._last_checkpoint_saved = ""
        self._last_time_checked: float | None = None
        # A step/time trigger fired before the monitored metric existed: save after validation.
        self._defer_save_until_validation = False
        self._validation_has_run = False
        # The file list was restored for this folder: compare it with the folder before saving.
        self._restored_in_place = False

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint; unique per configuration."""
        return self._generate_state_key(
            monitor=self.monitor,
            mode=self.mode,
            every_n_train_steps=self._every_n_train_steps,
            every_n_epochs=self._every_n_epochs,
            train_time_interval=self._train_time_interval,
        )

    @property
    def every_n_epochs(self) -> int:
        """Save every this many epochs; 0 when a step or time trigger is used instead."""
        return self._every_n_epochs

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Resolve the directory (the same on every rank) and check that it can be used."""
        self.dirpath = trainer.strategy.broadcast(self._resolve_dirpath(trainer))
        self._validation_has_run = False
        self._restored_in_place = False  # only a restore after this setup counts
        if self.save_last == "link" and not is_local(self.dirpath):
            raise ValueError(
                f"ModelCheckpoint(save_last='link') needs a local directory, got "
                f"dirpath={self.dirpath!r}. Use save_last=True for remote storage."
            )
        if trainer.is_global_zero and stage == "fit":
            checkpoint_folder.remove_leftovers(self)
        # A resumed fit writes into its old folder on purpose: warn only for fresh runs.
        resuming = bool(getattr(trainer, "_resume_requested", False))
        if trainer.is_global_zero and stage == "fit" and self.save_top_k != 0 and not resuming:
            fs = filesystem(self.dirpath)
            if fs.isdir(self.dirpath) and len(fs.ls(self.dirpath)) > 0:
                rank_zero_warn(
                    f"Checkpoint directory {self.dirpath} exists and is not empty: files of "
                    "this run may replace or sit beside them. Pass `ckpt_path=` to resume, or "
                    "choose another `dirpath`."
                )

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the clock for `train_time_interval`; after a resume, match the folder's files."""
        self._last_time_checked = time.monotonic()
        if self._restored_in_place or checkpoint_folder.run_died_before_its_first_last(
            self, trainer
        ):
            self._restored_in_place = False
            self._reconcile_with_folder(trainer)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Save when the step or time trigger fires."""
        step_due = self._every_n_train_steps >= 1 and (
            trainer.global_step % self._every_n_train_steps == 0
        )
        time_due = False
        if self._train_time_interval is not None:
            now = time.monotonic()
            last = self._last_time_checked
            due = last is not None and now - last >= self._train_time_interval.total_seconds()
            # Clocks differ across ranks; rank zero decides, or ranks could disagree and hang.
            time_due = bool(trainer.strategy.broadcast(due))
        if not (step_due or time_due):
            return
        if time_due:
            self._last_time_checked = time.monotonic()

        metrics = self._monitor_candidates(trainer)
        if self.monitor is not None and (
            self.monitor not in metrics or self._validation_follows_this_batch(trainer)
        ):
            # Either the metric does not exist yet or it is about to be replaced by a fresh one.
            self._defer_save_until_validation = True
            return
        if self._should_skip_saving_checkpoint(trainer):
            return
        self._save_topk_checkpoint(trainer, metrics)
        self._save_last_checkpoint(trainer, metrics)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save at the end of the epoch when validation does not decide the timing."""
        if self._should_skip_saving_checkpoint(trainer) or not self._should_save_on_train_epoch_end(
            trainer
        ):
            return
        self._save_epoch_checkpoints(trainer, self._monitor_candidates(trainer))

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Forget the previous validation run: its metrics are about to be replaced."""
        if self._is_fit_validation(trainer):
            self._validation_has_run = False

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Note that validation produced metrics, so a missing monitor is an error from now on."""
        if self._is_fit_validation(trainer):
            self._validation_has_run = True

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save after validation, when the epoch end does not decide the timing."""
        if self._should_skip_saving_checkpoint(trainer) or self._should_save_on_train_epoch_end(
            trainer
        ):
            return
        metrics = self._monitor_candidates(trainer)
        if self._defer_save_until_validation:
            self._defer_save_until_validation = False
            self._save_topk_checkpoint(trainer, metrics)
            self._save_last_checkpoint(trainer, metrics)
            return
        self._save_epoch_checkpoints(trainer, metrics)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write `last` if it was asked for and nothing was saved during training."""
        # Lightning 2.6 writes here even under fast_dev_run; fulmen keeps fast_dev_run file-free.
        if self.save_last and not self._last_checkpoint_saved and not trainer.fast_dev_run:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Save the current state when `save_on_exception` is set."""
        if (
            not self.save_on_exception
            or trainer.fast_dev_run
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step
        ):
            return
        metrics = self._monitor_candidates(trainer)
        filepath = self.format_checkpoint_name(metrics)
        self._save_checkpoint(trainer, filepath)
        self._save_last_checkpoint(trainer, metrics)
        rank_zero_info(
            f"{type(exception).__name__} raised ({exception}); saved a checkpoint to {filepath}"
        )

    def state_dict(self) -> dict[str, Any]:
        """Return the tracking state; paths are str and scores tensors, so it loads safely."""
        return {
            "monitor": self.monitor,
            "best_model_score": self.best_model_score,
            "best_model_path": self.best_model_path,
            "current_score": self.current_score,
            "dirpath": self.dirpath,
            "best_k_models": self.best_k_models,
            "kth_best_model_path": self.kth_best_model_path,
            "kth_value": self.kth_value,
            "last_model_path": self.last_model_path,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the tracking state; the file list only if the directory is unchanged."""
        saved_dirpath = state_dict.get("dirpath", self.dirpath)
        if saved_dirpath == self.dirpath:
            self.best_model_score = state_dict["best_model_score"]
            self.kth_best_model_path = state_dict.get(
                "kth_best_model_path", self.kth_best_model_path
            )
            self.kth_value = state_dict.get("kth_value", self.kth_value)
            self.best_k_models = state_dict.get("best_k_models", self.best_k_models)
            self.last_model_path = state_dict.get("last_model_path", self.last_model_path)
            self._restored_in_place = True
        else:
            rank_zero_warn(
                f"ModelCheckpoint's dirpath changed from {saved_dirpath!r} to {self.dirpath!r}: "
                "only `best_model_path` is restored; `best_model_score`, `best_k_models`, "
                "`kth_best_model_path`, `kth_value` and `last_model_path` start afresh."
            )
        self.best_model_path = state_dict["best_model_path"]

    # ------------------------------------------------------------------ public helpers

    def check_monitor_top_k(self, trainer: Trainer, current: Tensor | None = None) -> bool:
        """Return whether `current` earns a place among the best `save_top_k` scores."""
        if current is None:
            return False
        if self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return True
        kth = self.best_k_models[self.kth_best_model_path]
        better = bool(current < kth) if self.mode == "min" else bool(current > kth)
        # Every rank must agree, or some would save (and wait in a collective) and others not.
        return trainer.strategy.reduce_boolean_decision(better)

    def format_checkpoint_name(
        self,
        metrics: dict[str, Any],
        filename: str | None = None,
        ver: int | None = None,
        prefix: str | None = None,
    ) -> str:
        """Render a file path from the filename template and `metrics`.

        Fields missing from `metrics` render as 0.

        Example:
            >>> ckpt = ModelCheckpoint(filename="{epoch:03d}")
            >>> ckpt.format_checkpoint_name({"epoch": 5})
            'epoch=005.ckpt'
            >>> ckpt.format_checkpoint_name({"epoch": 5}, ver=2, prefix="run")
            'run-epoch=005-v2.ckpt'
            >>> ModelCheckpoint(filename="{missing}").format_checkpoint_name({})
            'missing=0.ckpt'
        """
        template = filename or self.filename or "{epoch}" + self.CHECKPOINT_JOIN_CHAR + "{step}"

        def render(match: re.Match[str]) -> str:
            name, spec = match.group(1), (match.group(2) or ":")[1:]
            value = metrics.get(name, 0)
            text = format(value.item() if isinstance(value, Tensor) else value, spec)
            return (
                f"{name}{self.CHECKPOINT_EQUALS_CHAR}{text}"
                if self.auto_insert_metric_name
                else text
            )

        name = TEMPLATE_FIELD.sub(render, template)
        if prefix is not None:
            name = f"{prefix}{self.CHECKPOINT_JOIN_CHAR}{name}"
        if ver is not None:
            name = f"{name}{self.CHECKPOINT_JOIN_CHAR}v{ver}"
        name += self.FILE_EXTENSION
        return os.path.join(self.dirpath, name) if self.dirpath else name

    def to_yaml(self, filepath: _PATH | None = None) -> None:
        """Write `best_k_models` (path: score) to YAML, by default `<dirpath>/best_k_models.yaml`."""
        import yaml

        if filepath is None:
            if self.dirpath is None:
                raise ValueError(
                    "ModelCheckpoint.to_yaml(filepath=None) needs `dirpath`, which is None until "
                    "the trainer runs `setup`; pass a filepath."
                )
            filepath = os.path.join(self.dirpath, "best_k_models.yaml")
        path = os.fspath(filepath)
        scores = {path_: score.item() for path_, score in self.best_k_models.items()}
        with filesystem(path).open(path, "w") as stream:
            yaml.dump(scores, stream)

    def file_exists(self, filepath: _PATH, trainer: Trainer) -> bool:
        """Return whether `filepath` exists, as seen by rank zero, on every rank."""
        path = os.fspath(filepath)
        exists = bool(filesystem(path).exists(path)) if trainer.is_global_zero else False
        return trainer.strategy.reduce_boolean_decision(exists, all=False)

    def _find_last_checkpoints(self, trainer: Trainer) -> set[str]:
        """Return the `last*.ckpt` files in this callback's directory (for `ckpt_path="last"`)."""
        dirpath = self._resolve_dirpath(trainer)
        fs = filesystem(dirpath)
        if not fs.exists(dirpath):
            return set()
        pattern = re.compile(rf"^{re.escape(self.CHECKPOINT_NAME_LAST)}(-(\d+))?")
        return {
            os.path.normpath(path)
            for path in fs.ls(dirpath, detail=False)
            if Path(path).suffix == self.FILE_EXTENSION and pattern.match(Path(path).stem)
        }

    # ------------------------------------------------------------------ the folder after a kill

    def _reconcile_with_folder(self, trainer: Trainer) -> None:
        """Forget listed files that are gone; delete this callback's files that are not listed."""
        lost: list[str] = []
        if trainer.is_global_zero:
            assert self.dirpath is not None
            fs = filesystem(self.dirpath)
            lost = [path for path in self.best_k_models if not fs.exists(path)]
            for path in checkpoint_folder.unlisted_own_files(self, trainer, fs):
                rank_zero_info(
                    f"ModelCheckpoint: removing {path!r}: the interrupted run wrote it, but the "
                    "state this fit resumes from does not list it."
                )
                self._remove_checkpoint(trainer, path)
        # Every rank ranks the files the same way, or they would disagree on what to save.
        lost = trainer.strategy.broadcast(lost)
        if not lost:
            return
        for path in lost:
            del self.best_k_models[path]
        if not self.best_k_models:
            self.kth_best_model_path, self.best_model_path, self.best_model_score = "", "", None
            self.kth_value = torch.tensor(float("inf") if self.mode == "min" else float("-inf"))
            return
        worst, best = (max, min) if self.mode == "min" else (min, max)
        self.kth_best_model_path = worst(self.best_k_models, key=self._score_of)
        self.kth_value = self.best_k_models[self.kth_best_model_path]
        self.best_model_path = best(self.best_k_models, key=self._score_of)
        self.best_model_score = self.best_k_models[self.best_model_path]

    # ------------------------------------------------------------------ decisions

    def _resolve_dirpath(self, trainer: Trainer) -> str:
        if self.dirpath is not None:
            return self.dirpath
        if trainer.loggers:
            logger = trainer.loggers[0]
            save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
            version = logger.version
            version = version if isinstance(version, str) else f"version_{version}"
            return os.path.join(os.fspath(save_dir), str(logger.name), version, "checkpoints")
        return os.path.join(os.fspath(trainer.default_root_dir), "checkpoints")

    @staticmethod
    def _is_fit_validation(trainer: Trainer) -> bool:
        return trainer.state.fn == "fit" and not trainer.sanity_checking

    def _should_skip_saving_checkpoint(self, trainer: Trainer) -> bool:
        return (
            bool(trainer.fast_dev_run)
            or trainer.state.fn != "fit"
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step
        )

    def _should_save_on_train_epoch_end(self, trainer: Trainer) -> bool:
        if self._save_on_train_epoch_end is not None:
            return self._save_on_train_epoch_end
        interval = trainer.val_check_interval
        if isinstance(interval, str | timedelta | dict):
            return False  # time-based validation: its timing is unknown, so follow it
        if trainer.check_val_every_n_epoch != 1:
            return False  # epochs without validation exist: saving must follow validation
        if sum(trainer.num_val_batches) == 0:
            return True
        return bool(interval == 1.0)

    def _validation_follows_this_batch(self, trainer: Trainer) -> bool:
        """Whether validation runs right after this (last) batch, so monitored values go stale."""
        if self._should_save_on_train_epoch_end(trainer) or not trainer.is_last_batch:
            return False
        if not trainer.enable_validation or sum(trainer.num_val_batches) == 0:
            return False
        every = trainer.check_val_every_n_epoch
        return every is None or (trainer.current_epoch + 1) % every == 0

    def _monitor_candidates(self, trainer: Trainer) -> dict[str, Tensor]:
        metrics = dict(trainer.callback_metrics)
        # self.log("epoch", ...) stores a float; file names want the int.
        epoch, step = metrics.get("epoch"), metrics.get("step")
        metrics["epoch"] = (
            epoch.int() if isinstance(epoch, Tensor) else torch.tensor(trainer.current_epoch)
        )
        metrics["step"] = (
            step.int() if isinstance(step, Tensor) else torch.tensor(trainer.global_step)
        )
        return metrics

    # ------------------------------------------------------------------ saving

    def _save_epoch_checkpoints(self, trainer: Trainer, metrics: dict[str, Tensor]) -> None:
        if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
            self._save_topk_checkpoint(trainer, metrics)
        saved_now = self._last_global_step_saved == trainer.global_step
        if saved_now or (self.save_last == "link" and self._last_checkpoint_saved):
            self._save_last_checkpoint(trainer, metrics)

    def _save_topk_checkpoint(self, trainer: Trainer, metrics: dict[str, Tensor]) -> None:
        if self.save_top_k == 0:
            return
        if self.monitor is None:
            self._save_latest_checkpoint(trainer, metrics)
            return
        if self.monitor not in metrics:
            message = (
                f"ModelCheckpoint(monitor={self.monitor!r}) found no such metric; available: "
                f"{sorted(metrics)}. Log it with `self.log({self.monitor!r}, value)` in the "
                "LightningModule, or change `monitor`."
            )
            if self._validation_has_run:
                raise MisconfigurationException(message)
            rank_zero_warn(message)
        current = metrics.get(self.monitor)
        if self.check_monitor_top_k(trainer, current):
            assert current is not None
            self._update_best_and_save(trainer, current, metrics)
        elif self.verbose:
            rank_zero_info(
                f"Epoch {int(metrics['epoch'])}, global step {int(metrics['step'])}: "
                f"{self.monitor!r} was not in top {self.save_top_k}"
            )

    def _save_latest_checkpoint(self, trainer: Trainer, metrics: dict[str, Tensor]) -> None:
        filepath = self._unused_filepath(trainer, metrics, reusable=self.best_model_path)
        previous, self.best_model_path = self.best_model_path, filepath
        self._save_checkpoint(trainer, filepath)
        if self.save_top_k == 1 and previous and self._should_remove(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    def _update_best_and_save(
        self, trainer: Trainer, current: Tensor, metrics: dict[str, Tensor]
    ) -> None:
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        replaced = ""
        if len(self.best_k_models) == k:
            replaced = self.kth_best_model_path
            del self.best_k_models[replaced]

        # A CPU copy: the trainer may reuse the metric tensor, and the file must load anywhere.
        current = current.detach().to("cpu", copy=True)
        if torch.isnan(current):
            # NaN never compares as better; ranking it worst keeps it out of the way.
            current = torch.tensor(float("inf") if self.mode == "min" else float("-inf"))

        filepath = self._unused_filepath(trainer, metrics, reusable=replaced)
        self.current_score = current
        self.best_k_models[filepath] = current
        worst, best = (max, min) if self.mode == "min" else (min, max)
        if len(self.best_k_models) == k:
            self.kth_best_model_path = worst(self.best_k_models, key=self._score_of)
            self.kth_value = self.best_k_models[self.kth_best_model_path]
        self.best_model_path = best(self.best_k_models, key=self._score_of)
        self.best_model_score = self.best_k_models[self.best_model_path]

        if self.verbose:
            rank_zero_info(
                f"Epoch {int(metrics['epoch'])}, global step {int(metrics['step'])}: "
                f"{self.monitor!r} reached {current.item():0.5f} "
                f"(best {self.best_model_score.item():0.5f}), saving model to {filepath!r} "
                f"as top {k}"
            )
        self._save_checkpoint(trainer, filepath)
        if replaced and self._should_remove(trainer, replaced, filepath):
            self._remove_checkpoint(trainer, replaced)

    def _score_of(self, path: str) -> float:
        return float(self.best_k_models[path])

    def _save_last_checkpoint(self, trainer: Trainer, metrics: dict[str, Tensor]) -> None:
        if not self.save_last:
            return
        filepath = self.format_checkpoint_name(metrics, self.CHECKPOINT_NAME_LAST)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while filepath != self.last_model_path and self.file_exists(filepath, trainer):
                filepath = self.format_checkpoint_name(
                    metrics, self.CHECKPOINT_NAME_LAST, ver=version
                )
                version += 1
        # Set before saving: the path is part of the state written into the file.
        previous, self.last_model_path = self.last_model_path, filepath
        if self.save_last == "link" and self._last_checkpoint_saved and self.save_top_k != 0:
            self._link_checkpoint(trainer, self._last_checkpoint_saved, filepath)
        else:
            self._save_checkpoint(trainer, filepath)
        if previous and self._should_remove(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    def _unused_filepath(self, trainer: Trainer, metrics: dict[str, Tensor], reusable: str) -> str:
        """Render the file path, adding `-vN` if the file exists and is not `reusable`."""
        filepath = self.format_checkpoint_name(metrics)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while filepath != reusable and self.file_exists(filepath, trainer):
                filepath = self.format_checkpoint_name(metrics, ver=version)
                version += 1
        return filepath

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        trainer.save_checkpoint(filepath, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    @staticmethod
    def _link_checkpoint(trainer: Trainer, filepath: str, linkpath: str) -> None:
        if trainer.is_global_zero and os.path.abspath(filepath) != os.path.abspath(linkpath):
            if os.path.islink(linkpath) or os.path.isfile(linkpath):
                os.remove(linkpath)
            elif os.path.isdir(linkpath):
                shutil.rmtree(linkpath)
            try:
                os.symlink(os.path.relpath(filepath, os.path.dirname(linkpath)), linkpath)
            except OSError:
                # Windows needs special rights for symlinks; a copy is the next best thing.
                shutil.copy(filepath, linkpath)
        trainer.strategy.barrier()

    def _should_remove(self, trainer: Trainer, previous: str, current: str) -> bool:
        """Whether `previous` is ours to delete: in our directory and not the file resumed from."""
        if previous == current:
            return False
        if not is_local(previous):
            return True
        previous_path = Path(previous).absolute()
        if trainer.ckpt_path is not None and previous_path == Path(trainer.ckpt_path).absolute():
            return False
        assert self.dirpath is not None
        return Path(self.dirpath).absolute() in previous_path.parents

    def _remove_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        if not trainer.is_global_zero:
            return
        # Through the CheckpointIO plugin: it removes atomically, and AsyncCheckpointIO first
        # lets a pending write of the same file finish.
        trainer.strategy.remove_checkpoint(filepath)
        log.debug(f"Removed checkpoint: {filepath}")
