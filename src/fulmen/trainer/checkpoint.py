"""Build the checkpoint dict, resolve `ckpt_path`, and restore a run from a checkpoint.

The dict holds Lightning's keys so tools written for Lightning checkpoints read ours, and only
plain data and tensors, so `torch.load(weights_only=True)` can read it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fulmen.trainer.call import call_callbacks, call_module
from fulmen.trainer.state import RunningStage, TrainerFn
from fulmen.utilities.checksum import CheckpointCorruptedError, verify_checkpoint_file
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info, rank_zero_warn

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer

__all__ = ["dump_checkpoint", "resolve_and_load", "restore_model", "restore_training_state"]

# The Lightning release whose checkpoint layout fulmen writes; tools check this key.
LIGHTNING_FORMAT_VERSION = "2.6.0"


def dump_checkpoint(trainer: Trainer, weights_only: bool = False) -> dict[str, Any]:
    from fulmen import __version__
    from fulmen.utilities.seed import _collect_rng_states

    module = trainer.lightning_module
    state = trainer.state
    epoch_done = state.epoch_done
    progress = state.state_dict()
    if state.step_pending:
        progress["batches_that_stepped"] += 1
    # Saved after a batch whose validation is due but has not run yet: the resumed run runs it.
    validation_due = (
        not epoch_done
        and state.stage == RunningStage.TRAINING
        and state.batches_done_in_epoch > 0
        and state.validated != (state.epoch, state.batches_done_in_epoch - 1)
        and trainer._data is not None
        and _validation_due(trainer)
    )
    checkpoint: dict[str, Any] = {
        "epoch": state.epoch,
        "global_step": state.global_step,
        "pytorch-lightning_version": LIGHTNING_FORMAT_VERSION,
        "fulmen_version": __version__,
        "state_dict": trainer.strategy.lightning_module_state_dict(),
        "loops": {
            "fit_loop": {
                **progress,
                "validation_due": validation_due,
                # Where training resumes: the next epoch after an epoch-end save, else the next batch.
                "epoch_completed": epoch_done,
                "batches_done_in_epoch": 0 if epoch_done else state.batches_done_in_epoch,
                "total_batches_seen": state.total_batches_seen,
                # Exact resume: the random state now, and the one the epoch's shuffle came from.
                "rng": _collect_rng_states(),
                "epoch_start_rng": state.epoch_start_rng,
            }
        },
    }
    if not weights_only:
        states = {cb.state_key: cb.state_dict() for cb in trainer.callbacks}
        checkpoint["callbacks"] = {key: state for key, state in states.items() if state}
        checkpoint["optimizer_states"] = [
            trainer.strategy.optimizer_state(o) for o in trainer.optimizers
        ]
        checkpoint["lr_schedulers"] = [
            c.scheduler.state_dict() for c in trainer.lr_scheduler_configs
        ]
        precision_state = trainer.precision_plugin.state_dict()
        if precision_state:
            checkpoint[type(trainer.precision_plugin).__qualname__] = precision_state
    if module.hparams:
        checkpoint[module.CHECKPOINT_HYPER_PARAMS_NAME] = "kwargs"  # as Lightning names init args
        checkpoint[module.CHECKPOINT_HYPER_PARAMS_KEY] = dict(module.hparams)
    datamodule = trainer.datamodule
    if datamodule is not None:
        if datamodule.hparams:
            checkpoint[datamodule.CHECKPOINT_HYPER_PARAMS_NAME] = "kwargs"
            checkpoint[datamodule.CHECKPOINT_HYPER_PARAMS_KEY] = dict(datamodule.hparams)
        dm_state = datamodule.state_dict()
        if dm_state:
            checkpoint[type(datamodule).__qualname__] = dm_state
    if not weights_only:
        call_callbacks(trainer, "on_save_checkpoint", checkpoint)
    call_module(trainer, "on_save_checkpoint", checkpoint)
    return checkpoint


def _validation_due(trainer: Trainer) -> bool:
    from fulmen.trainer.loop import _should_check_val

    state = trainer.state
    batch = state.batches_done_in_epoch - 1
    return _should_check_val(trainer, batch, batch + 1 == trainer.num_training_batches)


def resolve_and_load(
    trainer: Trainer, fn: TrainerFn, ckpt_path: Any, weights_only: bool | None
) -> dict[str, Any] | None:
    path = _resolve_path(trainer, fn, ckpt_path)
    trainer._ckpt_path = path
    if path is None:
        return None
    checkpoint = trainer.strategy.load_checkpoint(path, weights_only=weights_only)
    if fn != TrainerFn.FITTING:
        rank_zero_info(f"Loaded model weights from the checkpoint at {path}")
    else:
        rank_zero_info(f"Restoring states from the checkpoint path at {path}")
    return checkpoint


def _resolve_path(trainer: Trainer, fn: TrainerFn, ckpt_path: Any) -> str | None:
    chosen, trainer._user_ckpt_path = trainer._user_ckpt_path, None
    if ckpt_path is None:
        ckpt_path = chosen
    if ckpt_path is None and fn == TrainerFn.FITTING and _has_on_exception_checkpoint(trainer):
        # A crash-resume setup: with an OnExceptionCheckpoint, a relaunch picks up where it died.
        rank_zero_warn(
            "`fit(ckpt_path=None)` with an OnExceptionCheckpoint resumes from ckpt_path='last'. "
            "Pass ckpt_path explicitly to choose."
        )
        ckpt_path = "last"
    if ckpt_path is None:
        return None
    if not isinstance(ckpt_path, (str, os.PathLike)):
        raise TypeError(
            f"ckpt_path={ckpt_path!r} is invalid: expected a path, 'best', 'last' or 'hpc'."
        )
    ckpt_path = os.fspath(ckpt_path)
    if ckpt_path == "best":
        if trainer.fast_dev_run:
            raise ValueError(
                "ckpt_path='best' is not available with `fast_dev_run`, which saves no checkpoints."
            )
        callback = trainer.checkpoint_callback
        if callback is None:
            raise ValueError(
                "ckpt_path='best' needs a ModelCheckpoint callback; none is configured."
            )
        best = getattr(callback, "best_model_path", "")
        if not best:
            raise ValueError(
                "ckpt_path='best': the ModelCheckpoint has no best checkpoint yet. Run `fit` "
                "first, or pass a path."
            )
        return str(best)
    if ckpt_path == "last":
        return _newest_last_checkpoint(trainer)
    if ckpt_path == "hpc":
        raise MisconfigurationException(
            "ckpt_path='hpc' (SLURM requeue checkpoints) is not supported yet in fulmen; it "
            "comes with the multi-device issue. Pass a path or 'last'."
        )
    return str(ckpt_path)


def _has_on_exception_checkpoint(trainer: Trainer) -> bool:
    from fulmen.callbacks.on_exception_checkpoint import OnExceptionCheckpoint

    return any(isinstance(cb, OnExceptionCheckpoint) for cb in trainer.callbacks)


def _newest_last_checkpoint(trainer: Trainer) -> str | None:
    """The most recently written `last*.ckpt` of any ModelCheckpoint, or an on-exception file."""
    import fsspec

    from fulmen.callbacks.model_checkpoint import ModelCheckpoint
    from fulmen.callbacks.on_exception_checkpoint import OnExceptionCheckpoint

    candidates: set[str] = set()
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            candidates |= callback._find_last_checkpoints(trainer)
        elif isinstance(callback, OnExceptionCheckpoint):
            candidates.add(callback.ckpt_path)
    existing: list[tuple[float, str]] = []
    for path in candidates:
        fs, local = fsspec.core.url_to_fs(path)
        if fs.exists(local):
            existing.append((fs.modified(local).timestamp(), path))
    if not existing:
        # One command line serves the first launch and every requeue: say so, quietly.
        rank_zero_info(
            "ckpt_path='last' found no checkpoint to resume from; training starts from scratch."
        )
        return None
    # A run killed while saving may leave a damaged newest file: fall back to the newest intact one.
    for _, path in sorted(existing, reverse=True):
        if verify_checkpoint_file(path):
            return path
        rank_zero_warn(f"ckpt_path='last': skipping {path!r}, which is truncated or corrupted.")
    damaged = sorted(path for _, path in existing)
    raise CheckpointCorruptedError(
        f"ckpt_path='last': every candidate is truncated or corrupted: {damaged}. Pass ckpt_path "
        "explicitly (for example an older checkpoint), or ckpt_path=None to start from scratch."
    )


def restore_model(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    module = trainer.lightning_module
    if "state_dict" not in checkpoint:
        raise MisconfigurationException(
            f"The checkpoint {trainer.ckpt_path!r} has no 'state_dict' (keys: {sorted(checkpoint)})."
        )
    call_module(trainer, "on_load_checkpoint", checkpoint)
    try:
        trainer.strategy.load_model_state_dict(
            checkpoint["state_dict"], strict=module.strict_loading
        )
    except RuntimeError as err:
        raise RuntimeError(
            f"The weights in {trainer.ckpt_path!r} do not fit {type(module).__name__} (was it "
            "saved from another class?). Set `strict_loading = False` on the module to load the "
            f"matching keys only.\n{err}"
        ) from err
    datamodule = trainer.datamodule
    if datamodule is not None and type(datamodule).__qualname__ in checkpoint:
        datamodule.load_state_dict(checkpoint[type(datamodule).__qualname__])
    if trainer.state.fn == TrainerFn.FITTING:
        call_callbacks(trainer, "on_load_checkpoint", checkpoint)
        states = checkpoint.get("callbacks") or {}
        for callback in trainer.callbacks:
            state = states.get(callback.state_key)
            if state is not None:
                callback.load_state_dict(state)


def restore_training_state(trainer: Trainer, checkpoint: dict[str, Any]) -> None:
    """Restore optimizers, schedulers, precision and progress after `configure_optimizers`."""
    optimizer_states = checkpoint.get("optimizer_states")
    if optimizer_states is None:
        raise MisconfigurationException(
            f"The checkpoint {trainer.ckpt_path!r} holds weights only, so training cannot resume "
            "from it. Load it with `Model.load_from_checkpoint` and start a new fit."
        )
    if len(optimizer_states) != len(trainer.optimizers):
        raise MisconfigurationException(
            f"The checkpoint has {len(optimizer_states)} optimizer states but "
            f"`configure_optimizers` returned {len(trainer.optimizers)} optimizers."
        )
    for optimizer, state in zip(trainer.optimizers, optimizer_states):
        trainer.strategy.load_optimizer_state_dict(optimizer, state)
    for config, state in zip(trainer.lr_scheduler_configs, checkpoint.get("lr_schedulers", [])):
        config.scheduler.load_state_dict(state)
    precision_state = checkpoint.get(type(trainer.precision_plugin).__qualname__)
    if precision_state:
        trainer.precision_plugin.load_state_dict(precision_state)
    loop = (checkpoint.get("loops") or {}).get("fit_loop")
    if loop is not None and "epoch_progress" in loop:
        loop = _from_lightning_loop(loop, checkpoint)
    state = trainer.state
    if loop is None:
        state.epoch = int(checkpoint.get("epoch", 0))
        state.global_step = int(checkpoint.get("global_step", 0))
        state.batches_that_stepped = state.global_step
        return
    state.load_state_dict(loop)
    state.total_batches_seen = int(loop.get("total_batches_seen", 0))
    if loop.get("epoch_completed"):
        state.epoch += 1
        state.resume_batch_idx = 0
    else:
        state.resume_batch_idx = int(loop.get("batches_done_in_epoch", 0))
        state.batches_done_in_epoch = state.resume_batch_idx
        state.resume_validation_due = bool(loop.get("validation_due", False))
    # Lightning skips the sanity check only when resuming inside an epoch.
    state.restarting = state.resume_batch_idx > 0
    if loop.get("rng") is not None:
        state.resume_rng = loop["rng"]
    if loop.get("epoch_start_rng") is not None:
        state.resume_epoch_start_rng = loop["epoch_start_rng"]


def _from_lightning_loop(loop: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Read the progress of a checkpoint written by Lightning, so a fit resumes from it.

    Lightning keeps nested progress counters; an epoch whose training batches all ran counts as
    done. It stores no random state for the next batches, so a resume inside an epoch continues
    at the right batch but not with the same shuffle.
    """
    epochs = loop["epoch_progress"]["current"]
    batches = loop.get("epoch_loop.batch_progress", {})
    done_in_epoch = int(batches.get("current", {}).get("completed", 0))
    finished = bool(batches.get("is_last_batch")) or epochs["processed"] > epochs["completed"]
    global_step = int(checkpoint.get("global_step", 0))
    stepped = loop.get("epoch_loop.state_dict", {}).get("_batches_that_stepped", global_step)
    return {
        "epoch": int(checkpoint.get("epoch", 0)),  # the epoch running when it was saved
        "global_step": global_step,
        "batches_that_stepped": int(stepped),
        "total_batches_seen": int(batches.get("total", {}).get("completed", 0)),
        "epoch_completed": finished,
        "batches_done_in_epoch": 0 if finished else done_in_epoch,
    }
